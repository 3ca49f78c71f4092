#include "server/proto_convert.h"

#include <algorithm>

namespace recsys::server {

namespace {

int64_t ToUnixSeconds(const google::protobuf::Timestamp& t) { return t.seconds(); }

// Fills `response`'s validation report; leaves it unset for a bundle that was not tuned.
void ValidationToProto(const core::ValidationReport& v, v1::GetModelInfoResponse* response) {
  if (v.end_unix == 0 && v.rows.empty()) return;
  v1::ValidationReport* p = response->mutable_validation();
  p->mutable_window_start()->set_seconds(v.start_unix);
  p->mutable_window_end()->set_seconds(v.end_unix);
  for (const core::ValidationRow& row : v.rows) {
    v1::ValidationReport::Row* r = p->add_rows();
    r->set_method(row.method);
    r->set_variant(row.variant);
    r->set_ndcg_at_10(row.ndcg_at_10);
    r->set_cases(row.cases);
  }
  for (const std::string& note : v.notes) p->add_notes(note);
  p->set_report_file(v.report_file);
}

template <typename Map>
auto SortedEntries(const Map& map) {
  std::vector<std::pair<std::string, typename Map::mapped_type>> out(map.begin(), map.end());
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

core::EventType ToDomain(v1::EventType type) {
  switch (type) {
    case v1::EVENT_TYPE_PURCHASE:
      return core::EventType::kPurchase;
    case v1::EVENT_TYPE_VIEW:
      return core::EventType::kView;
    case v1::EVENT_TYPE_ADD_TO_CART:
      return core::EventType::kAddToCart;
    default:
      return core::EventType::kUnspecified;
  }
}

// Sets *p from `o`.
void OverridesToProto(const core::DefaultOverrides& o, v1::DefaultOverrides* p) {
  for (const auto& [name, weight] : o.weights) (*p->mutable_weights())[name] = weight;
  if (o.popularity_penalty) p->set_popularity_penalty(*o.popularity_penalty);
}

v1::FeatureKind ToProto(core::FeatureKind kind) {
  switch (kind) {
    case core::FeatureKind::kHistoryEvent:
      return v1::FEATURE_KIND_HISTORY_EVENT;
    case core::FeatureKind::kEventFeature:
      return v1::FEATURE_KIND_EVENT_FEATURE;
    case core::FeatureKind::kContext:
      return v1::FEATURE_KIND_CONTEXT;
    case core::FeatureKind::kPrior:
      return v1::FEATURE_KIND_PRIOR;
    default:
      return v1::FEATURE_KIND_UNSPECIFIED;
  }
}

void ToProto(const core::Attribution& a, v1::Attribution* p) {
  p->set_feature(a.feature);
  p->set_kind(ToProto(a.kind));
  p->set_history_index(a.history_index);
  p->set_item_id(a.item_id);
  p->set_display_value(a.display_value);
  p->set_attribution(a.attribution);
}

}  // namespace

core::AttributionMethod ToDomain(v1::AttributionMethod method) {
  switch (method) {
    case v1::ATTRIBUTION_METHOD_NONE:
      return core::AttributionMethod::kNone;
    case v1::ATTRIBUTION_METHOD_INTEGRATED_GRADIENTS:
      return core::AttributionMethod::kIntegratedGradients;
    case v1::ATTRIBUTION_METHOD_GRADIENT_X_INPUT:
      return core::AttributionMethod::kGradientXInput;
    case v1::ATTRIBUTION_METHOD_OCCLUSION:
      return core::AttributionMethod::kOcclusion;
    case v1::ATTRIBUTION_METHOD_KERNEL_SHAP:
      return core::AttributionMethod::kKernelShap;
    case v1::ATTRIBUTION_METHOD_CF_EXACT:
      return core::AttributionMethod::kCfExact;
    case v1::ATTRIBUTION_METHOD_REPLAY:
      return core::AttributionMethod::kReplay;
    case v1::ATTRIBUTION_METHOD_LIME:
      return core::AttributionMethod::kLime;
    default:
      return core::AttributionMethod::kDefault;
  }
}

v1::AttributionMethod ToProto(core::AttributionMethod method) {
  switch (method) {
    case core::AttributionMethod::kNone:
      return v1::ATTRIBUTION_METHOD_NONE;
    case core::AttributionMethod::kIntegratedGradients:
      return v1::ATTRIBUTION_METHOD_INTEGRATED_GRADIENTS;
    case core::AttributionMethod::kGradientXInput:
      return v1::ATTRIBUTION_METHOD_GRADIENT_X_INPUT;
    case core::AttributionMethod::kOcclusion:
      return v1::ATTRIBUTION_METHOD_OCCLUSION;
    case core::AttributionMethod::kKernelShap:
      return v1::ATTRIBUTION_METHOD_KERNEL_SHAP;
    case core::AttributionMethod::kCfExact:
      return v1::ATTRIBUTION_METHOD_CF_EXACT;
    case core::AttributionMethod::kReplay:
      return v1::ATTRIBUTION_METHOD_REPLAY;
    case core::AttributionMethod::kLime:
      return v1::ATTRIBUTION_METHOD_LIME;
    default:
      return v1::ATTRIBUTION_METHOD_UNSPECIFIED;
  }
}

core::RecommendRequest ToDomain(const v1::RecommendRequest& p) {
  core::RecommendRequest r;
  r.request_id = p.request_id();
  r.history.reserve(p.history_size());
  for (const v1::HistoryEvent& e : p.history()) {
    core::HistoryEvent& d = r.history.emplace_back();
    d.item_id = e.item_id();
    if (e.has_timestamp()) d.timestamp = ToUnixSeconds(e.timestamp());
    d.event_type = ToDomain(e.event_type());
    if (e.has_quantity()) d.quantity = e.quantity();
    if (e.has_price()) d.price = e.price();
    d.features = SortedEntries(e.features());
  }
  const v1::RequestContext& c = p.context();
  if (c.has_time()) r.context.time = ToUnixSeconds(c.time());
  r.context.country = c.country();
  r.context.numeric_features = SortedEntries(c.numeric_features());
  r.context.categorical_features = SortedEntries(c.categorical_features());
  r.top_k = p.top_k();
  r.exclude_item_ids.assign(p.exclude_item_ids().begin(), p.exclude_item_ids().end());
  r.candidate_item_ids.assign(p.candidate_item_ids().begin(), p.candidate_item_ids().end());
  r.candidates_only = p.candidates_only();
  r.explain.method = ToDomain(p.explain().method());
  r.explain.steps = p.explain().steps();
  r.explain.samples = p.explain().samples();
  r.explain.seed = p.explain().seed();
  r.explain.max_attributions = p.explain().max_attributions();
  r.explain.include_source_attributions = p.explain().include_source_attributions();
  r.fusion_weights = SortedEntries(p.fusion().weights());
  const v1::FilterOptions& f = p.filters();
  if (f.has_exclude_history()) r.exclude_history = f.exclude_history();
  r.allow_categories.assign(f.allow_categories().begin(), f.allow_categories().end());
  r.deny_categories.assign(f.deny_categories().begin(), f.deny_categories().end());
  if (f.has_min_price()) r.min_price = f.min_price();
  if (f.has_max_price()) r.max_price = f.max_price();
  r.max_per_category = p.diversity().max_per_category();
  r.mmr_lambda = p.diversity().mmr_lambda();
  if (p.ranking().has_popularity_penalty()) r.popularity_penalty = p.ranking().popularity_penalty();
  return r;
}

void ToProto(const core::RecommendResponse& r, v1::RecommendResponse* p) {
  p->set_request_id(r.request_id);
  p->mutable_items()->Reserve(static_cast<int>(r.items.size()));
  for (const core::RecommendedItem& item : r.items) {
    v1::RecommendedItem* pi = p->add_items();
    pi->set_item_id(item.item_id);
    pi->set_rank(item.rank);
    pi->set_score(item.score);
    for (const core::SourceScore& s : item.sources) {
      v1::SourceScore* ps = pi->add_sources();
      ps->set_source(s.source);
      ps->set_raw_score(s.raw_score);
      ps->set_normalized_score(s.normalized_score);
      ps->set_weight(s.weight);
      ps->set_contribution(s.contribution);
      ps->set_completeness_error(s.completeness_error);
      for (const core::Attribution& a : s.attributions) ToProto(a, ps->add_attributions());
    }
    for (const core::Attribution& a : item.attributions) ToProto(a, pi->add_attributions());
    pi->set_baseline_score(item.baseline_score);
    if (item.surrogate_r_squared) pi->set_surrogate_r_squared(*item.surrogate_r_squared);
    if (item.attribution_standard_error) {
      pi->set_attribution_standard_error(*item.attribution_standard_error);
    }
    pi->set_completeness_error(item.completeness_error);
    pi->set_reason(item.reason);
    v1::ItemInfo* info = pi->mutable_info();
    info->set_description(item.info.description);
    info->set_price(item.info.price);
    info->set_category(item.info.category);
    info->set_popularity(item.info.popularity);
    pi->set_profile_entry(item.profile_entry);
  }
  v1::InterestProfile* profile = p->mutable_profile();
  for (const core::InterestEntry& e : r.profile.entries) {
    v1::InterestProfile::Entry* pe = profile->add_entries();
    pe->set_category(e.category);
    pe->set_share(e.share);
    for (const std::string& id : e.item_ids) pe->add_item_ids(id);
  }
  profile->set_price_low(r.profile.price_low);
  profile->set_price_median(r.profile.price_median);
  profile->set_price_high(r.profile.price_high);
  const core::ResponseMetadata& m = r.metadata;
  v1::ResponseMetadata* pm = p->mutable_metadata();
  pm->set_bundle_version(m.bundle_version);
  pm->set_attribution_method(ToProto(m.attribution_method));
  pm->set_explanation_note(m.explanation_note);
  for (const core::StageTiming& t : m.stage_timings) {
    v1::StageTiming* pt = pm->add_stage_timings();
    pt->set_stage(t.stage);
    pt->set_seconds(t.seconds);
  }
  for (const std::string& id : m.ignored_history_item_ids) pm->add_ignored_history_item_ids(id);
  for (const std::string& id : m.ignored_candidate_item_ids) {
    pm->add_ignored_candidate_item_ids(id);
  }
  for (const auto& [filter, count] : m.filtered_counts) {
    (*pm->mutable_filtered_counts())[filter] = count;
  }
  pm->set_candidates_scored(m.candidates_scored);
  pm->set_backfilled(m.backfilled);
  pm->set_fallback_used(m.fallback_used);
  pm->set_fallback_reason(m.fallback_reason);
  pm->set_device(m.device);
}

void ToModelInfo(const core::Bundle& bundle, const pipeline::PipelineOptions& options,
                 v1::GetModelInfoResponse* p) {
  const core::BundleManifest& m = bundle.manifest();
  p->set_bundle_version(m.version);
  p->mutable_created_at()->set_seconds(m.created_unix);
  p->set_catalog_size(bundle.catalog().size());
  p->set_data_source(m.data_source);
  for (size_t i = 0; i < m.models.size(); ++i) {
    const core::ModelSpec& model = m.models[i];
    v1::ModelInfo* pm = p->add_models();
    pm->set_name(model.name);
    pm->set_kind(model.kind);
    pm->set_file(model.file);
    pm->set_embedding_dim(model.embedding_dim);
    pm->set_max_history(model.max_history);
    pm->set_device(bundle.models()[i]->device());  // Bundle::models() is in manifest order.
  }
  for (const core::SourceSpec& s : m.sources) {
    v1::SourceInfo* ps = p->add_sources();
    ps->set_name(s.name);
    ps->set_default_weight(s.weight);
    ps->set_slope(s.slope);
    ps->set_intercept(s.intercept);
  }
  auto add_features = [](const std::vector<core::FeatureSpec>& from,
                         google::protobuf::RepeatedPtrField<v1::FeatureSpec>* to) {
    for (const core::FeatureSpec& f : from) {
      v1::FeatureSpec* pf = to->Add();
      pf->set_name(f.name);
      pf->set_type(f.type);
      pf->set_description(f.description);
      pf->set_baseline(f.baseline);
    }
  };
  add_features(m.event_features, p->mutable_feature_schema()->mutable_event_features());
  add_features(m.context_features, p->mutable_feature_schema()->mutable_context_features());
  const pipeline::RequestLimits& l = options.limits;
  v1::Limits* pl = p->mutable_limits();
  pl->set_max_history(l.max_history);
  pl->set_max_top_k(l.max_top_k);
  pl->set_max_candidates(l.max_candidates);
  pl->set_max_exclude(l.max_exclude);
  pl->set_max_id_bytes(l.max_id_bytes);
  pl->set_max_steps(l.max_steps);
  pl->set_max_samples(l.max_samples);
  pl->set_max_attributions(l.max_attributions);
  v1::Defaults* pd = p->mutable_defaults();
  pd->set_top_k(options.default_top_k);
  pd->set_attribution_method(ToProto(options.default_method));
  pd->set_max_attributions(options.default_max_attributions);
  pd->set_exclude_history(m.exclude_history_default);
  pd->set_popularity_penalty(m.popularity_penalty_default);
  if (!m.new_items.empty()) OverridesToProto(m.new_items, pd->mutable_new_items());
  if (!m.new_shoppers.empty()) OverridesToProto(m.new_shoppers, pd->mutable_new_shoppers());
  pd->set_steps(options.default_ig_steps);
  pd->set_samples(options.default_shap_samples);
  for (const std::string& category : bundle.catalog().categories()) p->add_categories(category);
  p->set_category_method(m.category_method);
  ValidationToProto(m.validation, p);
  v1::CfIndexInfo* pc = p->mutable_cf_index();
  pc->set_neighbors_per_item(bundle.cf_index().neighbors_per_item());
  pc->set_total_neighbors(bundle.cf_index().num_neighbors());
  pc->set_shrinkage(bundle.cf_index().shrinkage());
  pc->set_recency_decay(m.recency_decay);
  pc->set_self_similarity(m.self_similarity);
  pc->set_self_recency_decay(m.self_recency_decay);
  pc->set_self_half_life_days(m.self_half_life_days);
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

FeedbackRequest ToDomain(const v1::FeedbackRequest& proto) {
  FeedbackRequest request;
  request.request_id = proto.request_id();
  request.events.reserve(proto.events_size());
  for (const v1::FeedbackEntry& e : proto.events()) {
    FeedbackEntry& entry = request.events.emplace_back();
    entry.item_id = e.item_id();
    entry.event = static_cast<FeedbackEvent>(e.event());  // Same numbers; unknown stays unknown.
    if (e.has_time()) {
      entry.time = absl::FromUnixSeconds(e.time().seconds()) + absl::Nanoseconds(e.time().nanos());
    }
  }
  return request;
}

void ToProto(const FeedbackResult& result, v1::FeedbackResponse* proto) {
  proto->set_accepted(result.accepted);
  proto->set_duplicates(result.duplicates);
}

}  // namespace recsys::server
