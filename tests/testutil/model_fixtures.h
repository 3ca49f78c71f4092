#ifndef RECSYS_TESTS_TESTUTIL_MODEL_FIXTURES_H_
#define RECSYS_TESTS_TESTUTIL_MODEL_FIXTURES_H_

#include <memory>
#include <string>

#include "core/bundle.h"

namespace recsys::testing {

// A bundle version directory built from TinyRetailCsv() (recency decay 0.5, shrinkage 1, no
// self-similarity) to which tests/testutil/make_tiny_models.py added tiny seeded cnn and rnn
// models, reference.json and two contract-breaking models. Returns the directory; fails the
// test when the script fails.
std::string MakeTinyModelBundleDir();

// MakeTinyModelBundleDir(), loaded with the TorchScript loader on the CPU.
std::shared_ptr<const core::Bundle> TinyModelBundle();

}  // namespace recsys::testing

#endif  // RECSYS_TESTS_TESTUTIL_MODEL_FIXTURES_H_
