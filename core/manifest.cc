#include "core/manifest.h"

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/sources.h"
#include "nlohmann/json.hpp"

namespace recsys::core {

namespace {

using nlohmann::json;

constexpr int32_t kFormatVersion = 1;

std::vector<FeatureSpec> ParseFeatures(const json& array) {
  std::vector<FeatureSpec> features;
  for (const json& f : array) {
    features.push_back({f.at("name").get<std::string>(), f.value("type", "numeric"),
                        f.value("description", ""), f.value("baseline", 0.0)});
  }
  return features;
}

json FeaturesToJson(const std::vector<FeatureSpec>& features) {
  json array = json::array();
  for (const FeatureSpec& f : features) {
    json feature = {{"name", f.name}, {"type", f.type}, {"description", f.description}};
    if (f.baseline != 0.0) feature["baseline"] = f.baseline;
    array.push_back(std::move(feature));
  }
  return array;
}

DefaultOverrides ParseOverrides(const json& o) {
  DefaultOverrides out;
  const json weights = o.value("weights", json::object());  // items() needs it to live.
  for (const auto& [name, weight] : weights.items()) {
    out.weights.emplace_back(name, weight.get<double>());
  }
  if (o.contains("popularity_penalty")) {
    out.popularity_penalty = o["popularity_penalty"].get<double>();
  }
  return out;
}

json OverridesToJson(const DefaultOverrides& o) {
  json out = {{"weights", json::object()}};
  for (const auto& [name, weight] : o.weights) out["weights"][name] = weight;
  if (o.popularity_penalty) out["popularity_penalty"] = *o.popularity_penalty;
  return out;
}

ValidationReport ParseValidation(const json& j) {
  ValidationReport v;
  v.start_unix = j.value("start_unix", int64_t{0});
  v.end_unix = j.value("end_unix", int64_t{0});
  v.report_file = j.value("report_file", "");
  const json rows = j.value("rows", json::array());
  for (const json& row : rows) {
    v.rows.push_back({row.at("method").get<std::string>(), row.at("variant").get<std::string>(),
                      row.at("ndcg_at_10").get<double>(), row.value("cases", int64_t{0})});
  }
  const json notes = j.value("notes", json::array());
  for (const json& note : notes) v.notes.push_back(note);
  return v;
}

json ValidationToJson(const ValidationReport& v) {
  json rows = json::array();
  for (const ValidationRow& r : v.rows) {
    rows.push_back({{"method", r.method},
                    {"variant", r.variant},
                    {"ndcg_at_10", r.ndcg_at_10},
                    {"cases", r.cases}});
  }
  return {{"start_unix", v.start_unix},
          {"end_unix", v.end_unix},
          {"rows", rows},
          {"notes", v.notes},
          {"report_file", v.report_file}};
}

}  // namespace

const SourceSpec* BundleManifest::FindSource(absl::string_view name) const {
  for (const SourceSpec& s : sources) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

namespace {

// Reads the fields of `j` into `m`. Throws json::exception for missing or mistyped fields.
absl::Status ReadManifest(const json& j, BundleManifest* out) {
  BundleManifest& m = *out;
  m.format_version = j.at("format_version").get<int32_t>();
  if (m.format_version != kFormatVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("format_version ", m.format_version, ", this server reads ", kFormatVersion));
  }
  m.version = j.at("version").get<std::string>();
  m.created_unix = j.value("created_unix", int64_t{0});
  m.data_source = j.value("data_source", "");
  m.category_method = j.value("category_method", "");
  m.items_file = j.value("items_file", m.items_file);
  m.cf_index_file = j.value("cf_index_file", m.cf_index_file);
  m.country_popularity_file = j.value("country_popularity_file", "");
  m.recent_days = j.value("recent_days", m.recent_days);
  if (j.contains("cf")) {
    m.recency_decay = j["cf"].value("recency_decay", m.recency_decay);
    m.self_similarity = j["cf"].value("self_similarity", m.self_similarity);
    m.self_recency_decay = j["cf"].value("self_recency_decay", m.recency_decay);
    m.self_half_life_days = j["cf"].value("self_half_life_days", 0.0);
  }
  m.train_cutoff_unix = j.value("train_cutoff_unix", int64_t{0});
  if (j.contains("defaults")) {
    m.exclude_history_default = j["defaults"].value("exclude_history", false);
    m.popularity_penalty_default = j["defaults"].value("popularity_penalty", 0.0);
    const json& d = j["defaults"];
    if (d.contains("new_items")) m.new_items = ParseOverrides(d["new_items"]);
    if (d.contains("new_shoppers")) m.new_shoppers = ParseOverrides(d["new_shoppers"]);
  }
  if (j.contains("validation")) m.validation = ParseValidation(j["validation"]);
  for (const json& s : j.at("sources")) {
    m.sources.push_back({s.at("name").get<std::string>(), s.value("weight", 1.0),
                         s.value("slope", 1.0), s.value("intercept", 0.0)});
  }
  if (j.contains("feature_schema")) {
    const json& fs = j["feature_schema"];
    if (fs.contains("event_features")) m.event_features = ParseFeatures(fs["event_features"]);
    if (fs.contains("context_features")) {
      m.context_features = ParseFeatures(fs["context_features"]);
    }
  }
  for (const json& model : j.value("models", json::array())) {
    m.models.push_back({model.at("name").get<std::string>(), model.at("kind").get<std::string>(),
                        model.at("file").get<std::string>(), model.value("embedding_dim", 0),
                        model.value("max_history", 0)});
  }
  return absl::OkStatus();
}

// Checks defaults.<field>: a penalty finite and >= 0, weights of the manifest's sources, >= 0.
absl::Status CheckOverrides(const BundleManifest& m, const std::string& field,
                            const DefaultOverrides& o) {
  if (const double p = o.popularity_penalty.value_or(0); !std::isfinite(p) || p < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("manifest: defaults.", field, ".popularity_penalty must be finite and >= 0"));
  }
  for (const auto& [name, weight] : o.weights) {
    if (m.FindSource(name) == nullptr || !std::isfinite(weight) || weight < 0) {
      return absl::InvalidArgumentError(absl::StrCat("manifest: defaults.", field, ".weights[\"",
                                                     name, "\"] needs a source and a weight >= 0"));
    }
  }
  return absl::OkStatus();
}

// The value checks of a read manifest: INVALID_ARGUMENT naming the field.
absl::Status CheckManifest(const BundleManifest& m) {
  if (m.version.empty()) return absl::InvalidArgumentError("manifest: empty version");
  if (m.recent_days < 1) return absl::InvalidArgumentError("manifest: recent_days must be >= 1");
  if (!(m.recency_decay > 0 && m.recency_decay <= 1) ||
      !(m.self_recency_decay > 0 && m.self_recency_decay <= 1)) {
    return absl::InvalidArgumentError(
        "manifest: cf.recency_decay and cf.self_recency_decay must be in (0, 1]");
  }
  if (!std::isfinite(m.self_half_life_days) || m.self_half_life_days < 0) {
    return absl::InvalidArgumentError("manifest: cf.self_half_life_days must be finite and >= 0");
  }
  if (!std::isfinite(m.self_similarity) || m.self_similarity < 0) {
    return absl::InvalidArgumentError("manifest: cf.self_similarity must be finite and >= 0");
  }
  if (!std::isfinite(m.popularity_penalty_default) || m.popularity_penalty_default < 0) {
    return absl::InvalidArgumentError(
        "manifest: defaults.popularity_penalty must be finite and >= 0");
  }
  for (const auto& [field, o] :
       {std::pair{"new_items", &m.new_items}, std::pair{"new_shoppers", &m.new_shoppers}}) {
    if (absl::Status s = CheckOverrides(m, field, *o); !s.ok()) return s;
  }
  if (m.FindSource(kCfSourceName) == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("manifest: sources has no \"", kCfSourceName, "\" entry"));
  }
  for (const SourceSpec& s : m.sources) {
    if (!std::isfinite(s.weight) || s.weight < 0 || !std::isfinite(s.slope) ||
        !std::isfinite(s.intercept)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "manifest: source \"", s.name, "\" needs finite slope, intercept, weight >= 0"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<float> ContextBaseline(const BundleManifest& manifest) {
  std::vector<float> out;
  for (const FeatureSpec& f : manifest.context_features) {
    out.push_back(static_cast<float>(f.baseline));
  }
  return out;
}

absl::StatusOr<BundleManifest> ParseManifest(const std::string& json_text) {
  BundleManifest m;
  try {
    if (absl::Status s = ReadManifest(json::parse(json_text), &m); !s.ok()) return s;
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("malformed manifest: ", e.what()));
  }
  if (absl::Status s = CheckManifest(m); !s.ok()) return s;
  return m;
}

std::string SerializeManifest(const BundleManifest& m) {
  json sources = json::array();
  for (const SourceSpec& s : m.sources) {
    sources.push_back(
        {{"name", s.name}, {"weight", s.weight}, {"slope", s.slope}, {"intercept", s.intercept}});
  }
  json models = json::array();
  for (const ModelSpec& model : m.models) {
    models.push_back({{"name", model.name},
                      {"kind", model.kind},
                      {"file", model.file},
                      {"embedding_dim", model.embedding_dim},
                      {"max_history", model.max_history}});
  }
  json j = {
      {"format_version", m.format_version},
      {"version", m.version},
      {"created_unix", m.created_unix},
      {"data_source", m.data_source},
      {"category_method", m.category_method},
      {"items_file", m.items_file},
      {"cf_index_file", m.cf_index_file},
      {"country_popularity_file", m.country_popularity_file},
      {"recent_days", m.recent_days},
      {"train_cutoff_unix", m.train_cutoff_unix},
      {"cf",
       {{"recency_decay", m.recency_decay},
        {"self_recency_decay", m.self_recency_decay},
        {"self_half_life_days", m.self_half_life_days},
        {"self_similarity", m.self_similarity}}},
      {"defaults",
       {{"exclude_history", m.exclude_history_default},
        {"popularity_penalty", m.popularity_penalty_default},
        {"new_items", OverridesToJson(m.new_items)},
        {"new_shoppers", OverridesToJson(m.new_shoppers)}}},
      {"validation", ValidationToJson(m.validation)},
      {"sources", sources},
      {"feature_schema",
       {{"event_features", FeaturesToJson(m.event_features)},
        {"context_features", FeaturesToJson(m.context_features)}}},
      {"models", models},
  };
  return j.dump(2) + "\n";
}

}  // namespace recsys::core
