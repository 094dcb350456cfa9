#include "common/gram_tiles.h"

#include <algorithm>
#include <stdexcept>

#include "common/surgery_math.h"

namespace sgs {

std::vector<GramTile> plan_gram_tiles(int num_sets, int max_sets) {
  if (num_sets < 1 || max_sets < 2) throw std::invalid_argument("plan_gram_tiles: need num_sets >= 1, max_sets >= 2");
  std::vector<GramTile> tiles;
  if (num_sets <= max_sets) {
    GramTile all;
    for (int s = 0; s < num_sets; ++s) all.sets.push_back(s);
    for (int p = 0; p < num_pairs(num_sets); ++p) {
      all.src_pair.push_back(p);
      all.dst_pair.push_back(p);
    }
    tiles.push_back(all);
    return tiles;
  }
  const int group = max_sets / 2;
  const int num_groups = (num_sets + group - 1) / group;
  for (int a = 0; a < num_groups; ++a) {
    for (int b = a; b < num_groups; ++b) {
      GramTile tile;
      const int a_end = std::min(num_sets, (a + 1) * group);
      for (int s = a * group; s < a_end; ++s) tile.sets.push_back(s);
      const int a_count = static_cast<int>(tile.sets.size());
      if (b != a) {
        for (int s = b * group; s < std::min(num_sets, (b + 1) * group); ++s) tile.sets.push_back(s);
      }
      const int n = static_cast<int>(tile.sets.size());
      for (int i = 0; i < n; ++i) {
        for (int j = i; j < n; ++j) {
          const bool keep = (a == b) || (i < a_count && j >= a_count);
          if (!keep) continue;
          tile.src_pair.push_back(packed_pair_index(i, j, n));
          tile.dst_pair.push_back(packed_pair_index(tile.sets[i], tile.sets[j], num_sets));
        }
      }
      tiles.push_back(tile);
    }
  }
  return tiles;
}

}  // namespace sgs
