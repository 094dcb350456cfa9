"""Analyses and figures over a run's output directory or checkpoints (``experiments/analyze.py``).

One module per analysis:

- ``gradient_similarity``: cosine of the languages' gradients, one heatmap per checkpoint (the paper's Figure 1);
- ``overfitting``: ord-FS+dev's target dev score per epoch (Figure 3);
- ``language_gains``: top and bottom languages by gain of one method over another (Tables 2 and 8);
- ``interpolation``: models on the line / plane between checkpoints (Wu, Van Durme & Dredze 2022);
- ``language_similarity``: zero-shot score and few-shot gain against lang2vec similarity (Lauscher et al. 2020);

with ``common`` (reading a run dir, writing files), ``checkpoints`` (finding and loading
models) and ``families`` (language families, for ordering).
"""
