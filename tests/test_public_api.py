"""What `from sgs_ext import *` gives a user: the headline API and the ops."""
import sgs_ext


def test_all_lists_the_headline_api():
    assert {"StochasticGradientSurgery", "SurgeryStats"} <= set(sgs_ext.__all__)
    assert {"dot_norm", "project_", "surgery_", "gram"} <= set(sgs_ext.__all__)


def test_every_name_in_all_exists_and_star_import_gives_it():
    namespace = {}
    exec("from sgs_ext import *", namespace)
    for name in sgs_ext.__all__:
        assert getattr(sgs_ext, name) is namespace[name], name
