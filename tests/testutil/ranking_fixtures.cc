#include "tests/testutil/ranking_fixtures.h"

#include "gtest/gtest.h"
#include "tests/testutil/fixtures.h"

namespace recsys::testing {

std::vector<core::SourceSpec> TinyFakeModelSources() {
  return {{"cnn", 0.5, 2.0, -0.25}, {"rnn", 0.25, 0.5, 0.1}};
}

std::shared_ptr<const core::Bundle> TinyBundleWithFakeModels(
    const FakeModelOptions& options, const std::vector<core::SourceSpec>& models) {
  const std::shared_ptr<const core::Bundle> plain = TinyBundle(0.5);
  if (plain == nullptr) return nullptr;
  const std::string dir = plain->dir();
  if (absl::Status s =
          AddModelSources(dir, models, kTinyFakeMaxHistory, {"United Kingdom", "France"});
      !s.ok()) {
    ADD_FAILURE() << s;
    return nullptr;
  }
  absl::StatusOr<std::shared_ptr<const core::Bundle>> bundle =
      core::Bundle::Load(dir, FakeModelLoader(options));
  if (!bundle.ok()) {
    ADD_FAILURE() << bundle.status();
    return nullptr;
  }
  return *bundle;
}

const FakeModelRunner* FakeModel(const core::Bundle& bundle, const std::string& name) {
  for (const auto& model : bundle.models()) {
    if (model->name() == name) return dynamic_cast<const FakeModelRunner*>(model.get());
  }
  return nullptr;
}

core::RecommendRequest TinyModelRequest() {
  core::RecommendRequest r;
  struct Event {
    const char* id;
    int64_t time;
    double quantity, price;
  };
  for (const Event& e : {Event{"21A", 1262340000, 2.0, 1.5}, Event{"21C", 1262512800, 1.0, 3.0},
                         Event{"21B", 1262599200, 6.0, 2.0}}) {
    core::HistoryEvent& h = r.history.emplace_back();
    h.item_id = e.id;
    h.timestamp = e.time;
    h.quantity = e.quantity;
    h.price = e.price;
  }
  r.context.country = "France";
  r.context.time = 1262703600;
  return r;
}

}  // namespace recsys::testing
