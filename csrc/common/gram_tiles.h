// How a Gram matrix of many gradient sets is covered by kernel passes that
// each handle at most `max_sets` sets (torch-free host code).
//
// Sets are cut into groups of max_sets / 2.  A tile is a pair of groups
// (a <= b); its pass reads the sets of a and b and keeps the pairs inside a
// (when a == b) or across a and b (when a < b), so every pair (i <= j) of the
// L x L matrix comes from exactly one tile.  With L <= max_sets there is one
// tile holding every set.
#pragma once

#include <vector>

namespace sgs {

struct GramTile {
  std::vector<int> sets;      // global set indices the pass reads, in order
  std::vector<int> src_pair;  // packed pair index within the pass's own result
  std::vector<int> dst_pair;  // packed pair index in the L x L result
};

std::vector<GramTile> plan_gram_tiles(int num_sets, int max_sets);

}  // namespace sgs
