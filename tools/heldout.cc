#include "tools/heldout.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "core/retail_data.h"
#include "pipeline/attribution_methods.h"
#include "server/proto_convert.h"

namespace recsys::tools {

v1::RecommendRequest ToRequest(const core::EvalCase& c) {
  v1::RecommendRequest request;
  for (const core::HistoryEvent& h : c.history) {
    v1::HistoryEvent* e = request.add_history();
    e->set_item_id(h.item_id);
    if (h.timestamp) e->mutable_timestamp()->set_seconds(*h.timestamp);
    if (h.quantity) e->set_quantity(*h.quantity);
    if (h.price) e->set_price(*h.price);
  }
  request.mutable_context()->set_country(c.country);
  request.mutable_context()->mutable_time()->set_seconds(c.time);
  return request;
}

absl::StatusOr<std::vector<v1::RecommendRequest>> HeldOutRequests(const std::string& input,
                                                                  const std::string& cutoff,
                                                                  int max_history) {
  absl::StatusOr<int64_t> cutoff_unix = core::ParseDateTime(cutoff);
  if (!cutoff_unix.ok()) return cutoff_unix.status();
  absl::StatusOr<core::RetailData> data = core::ReadRetailCsv(input, {});
  if (!data.ok()) return data.status();
  std::vector<v1::RecommendRequest> requests;
  for (const core::EvalCase& c :
       core::MakeNextBasketCases(*data, *cutoff_unix, INT64_MAX, max_history)) {
    requests.push_back(ToRequest(c));
  }
  if (requests.empty()) {
    return absl::NotFoundError(absl::StrCat(input, ": no held-out customer after ", cutoff));
  }
  return requests;
}

absl::StatusOr<v1::AttributionMethod> ProtoMethodNamed(const std::string& name) {
  absl::StatusOr<core::AttributionMethod> method = pipeline::ParseAttributionMethod(name);
  if (!method.ok()) return method.status();
  return server::ToProto(*method);
}

}  // namespace recsys::tools
