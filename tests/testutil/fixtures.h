#ifndef RECSYS_TESTS_TESTUTIL_FIXTURES_H_
#define RECSYS_TESTS_TESTUTIL_FIXTURES_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/bundle.h"
#include "core/manifest.h"
#include "core/types.h"

namespace recsys::testing {

// A fresh, empty directory under the test's temporary directory, unique to this process and
// call.
std::string MakeTempDir(const std::string& name);

// Writes `content` to `path`, replacing it.
void WriteFile(const std::string& path, const std::string& content);

// A tiny purchase file in the Online Retail II layout whose similarities are worked out by
// hand in the tests: customers 1 {A,B,C}, 2 {A,B}, 3 {B,C}, 4 {A,A}, 5 {D}, plus rows the
// filter must drop. Item X has the StockCode "21X" ("B", "D", "M" alone are non-product codes).
std::string TinyRetailCsv();

// Builds a bundle from TinyRetailCsv() with shrinkage 1 and the given recency decay; returns
// the loaded bundle. Items are indexed 21A=0, 21B=1, 21C=2, 21D=3.
std::shared_ptr<const core::Bundle> TinyBundle(double recency_decay = 0.5,
                                               int neighbors_per_item = 100,
                                               double self_similarity = 0.0,
                                               double self_half_life_days = 0.0);

// A request whose history holds these item ids, oldest first, with nothing else set.
core::RecommendRequest RequestWithHistory(const std::vector<std::string>& ids);

// A file of the source tree, by its path relative to the repository root.
std::string SourcePath(const std::string& relative);

// The vendored sample of Online Retail II (495 customers, whole period).
std::string SmallRetailCsvPath();

// Rewrites the manifest.json of the bundle version directory `dir` after `edit` changed it, as
// the bundle builder would have written it. Fails the test when it does not parse.
void EditManifest(const std::string& dir, const std::function<void(core::BundleManifest*)>& edit);

}  // namespace recsys::testing

#endif  // RECSYS_TESTS_TESTUTIL_FIXTURES_H_
