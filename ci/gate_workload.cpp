#include "ci/gate_workload.h"

#include <algorithm>
#include <sstream>

#include "harness/error.h"
#include "harness/json_file.h"

namespace kvbench::gate {

using nlohmann::json;

std::vector<int> GateWorkload::sweep_positions(bool long_sweep) const {
  std::vector<int> out = sweep.positions;
  if (long_sweep) out.insert(out.end(), sweep.long_positions.begin(), sweep.long_positions.end());
  return out;
}

void GateWorkload::validate() const {
  model.validate();
  const int cap = model.capacity;
  require(!counters.prompts.empty(), "gate workload: counters.prompts is empty");
  int longest = 0;
  for (int p : counters.prompts) {
    require(p >= 1, "gate workload: counters.prompts holds ", p, " (must be >= 1)");
    longest = std::max(longest, p);
  }
  require(counters.batch_steps >= 0 && counters.fork_steps >= 0 && counters.final_steps >= 0,
          "gate workload: counters step counts must be >= 0");
  require(longest + counters.batch_steps + counters.fork_steps + counters.final_steps <= cap,
          "gate workload: the counters workload passes the capacity ", cap);
  require(counters.truncate_to >= 0, "gate workload: counters.truncate_to is ",
          counters.truncate_to, " (must be >= 0)");
  require(counters.shared_prefix >= 0 && counters.shared_prefix <= counters.prompts.front() &&
              counters.shared_prefix + 8 <= cap,
          "gate workload: counters.shared_prefix is ", counters.shared_prefix,
          " (must be 0..the first prompt's ", counters.prompts.front(), " rows)");
  require(!decode.positions.empty(), "gate workload: decode.positions is empty");
  for (int p : decode.positions) {
    require(p >= 1 && p + decode.steps <= cap, "gate workload: decode position ", p,
            " + steps ", decode.steps, " does not fit capacity ", cap);
  }
  require(decode.steps >= 1, "gate workload: decode.steps is ", decode.steps, " (must be >= 1)");
  require(sweep.steps >= 1, "gate workload: sweep.steps is ", sweep.steps, " (must be >= 1)");
  require(sweep.positions.size() >= 2, "gate workload: sweep.positions needs >= 2 values to fit");
  for (int p : sweep_positions(true)) {
    require(p >= 1 && p + sweep.steps <= cap, "gate workload: sweep position ", p, " + steps ",
            sweep.steps, " does not fit capacity ", cap);
  }
  require(std::count(sweep.positions.begin(), sweep.positions.end(), sweep.ratio_position) == 1,
          "gate workload: sweep.ratio_position ", sweep.ratio_position,
          " is not one of sweep.positions");
  require(threads >= 1, "gate workload: threads is ", threads, " (must be >= 1)");
}

GateWorkload default_workload() {
  GateWorkload w;
  w.model.layers = 2;
  w.model.d_model = 64;
  w.model.heads = 4;
  w.model.kv_heads = 2;
  w.model.head_dim = 16;
  w.model.capacity = 2112;  // the longest sweep position (2048) + its steps, rounded up
  w.model.dtype = DType::f32;
  w.model.seed = 7;
  w.validate();
  return w;
}

json to_json(const GateWorkload& w) {
  const ModelConfig& m = w.model;
  return json{
      {"model",
       {{"layers", m.layers},
        {"d_model", m.d_model},
        {"heads", m.heads},
        {"kv_heads", m.kv_heads},
        {"head_dim", m.head_dim},
        {"capacity", m.capacity},
        {"dtype", dtype_name(m.dtype)},
        {"seed", m.seed}}},
      {"counters",
       {{"prompts", w.counters.prompts},
        {"batch_steps", w.counters.batch_steps},
        {"fork_steps", w.counters.fork_steps},
        {"truncate_to", w.counters.truncate_to},
        {"final_steps", w.counters.final_steps},
        {"shared_prefix", w.counters.shared_prefix}}},
      {"decode", {{"positions", w.decode.positions}, {"steps", w.decode.steps}}},
      {"sweep",
       {{"positions", w.sweep.positions},
        {"long_positions", w.sweep.long_positions},
        {"steps", w.sweep.steps},
        {"ratio_position", w.sweep.ratio_position}}},
      {"input_seed", w.input_seed},
      {"threads", w.threads},
  };
}

namespace {

// RETURNS: json[key] converted to T; throws Error naming `where`.key when missing or mistyped
// ("gate workload: model.layers: expected a whole number, got the string \"one\"").
template <typename T>
T field(const json& j, const char* where, const char* key) {
  require(j.is_object() && j.contains(key), "gate workload: missing field ", where, key);
  return json_file::as<T>(json_file::Field(j.at(key), "gate workload", std::string(where) + key));
}

}  // namespace

GateWorkload workload_from_json(const json& j) {
  GateWorkload w;
  const json& m = j.contains("model") ? j.at("model") : json();
  w.model.layers = field<int>(m, "model.", "layers");
  w.model.d_model = field<int>(m, "model.", "d_model");
  w.model.heads = field<int>(m, "model.", "heads");
  w.model.kv_heads = field<int>(m, "model.", "kv_heads");
  w.model.head_dim = field<int>(m, "model.", "head_dim");
  w.model.capacity = field<int>(m, "model.", "capacity");
  w.model.dtype = parse_dtype(field<std::string>(m, "model.", "dtype"));
  w.model.seed = field<std::uint64_t>(m, "model.", "seed");
  const json& c = j.contains("counters") ? j.at("counters") : json();
  w.counters.prompts = field<std::vector<int>>(c, "counters.", "prompts");
  w.counters.batch_steps = field<int>(c, "counters.", "batch_steps");
  w.counters.fork_steps = field<int>(c, "counters.", "fork_steps");
  w.counters.truncate_to = field<int>(c, "counters.", "truncate_to");
  w.counters.final_steps = field<int>(c, "counters.", "final_steps");
  w.counters.shared_prefix = field<int>(c, "counters.", "shared_prefix");
  const json& d = j.contains("decode") ? j.at("decode") : json();
  w.decode.positions = field<std::vector<int>>(d, "decode.", "positions");
  w.decode.steps = field<int>(d, "decode.", "steps");
  const json& s = j.contains("sweep") ? j.at("sweep") : json();
  w.sweep.positions = field<std::vector<int>>(s, "sweep.", "positions");
  w.sweep.long_positions = field<std::vector<int>>(s, "sweep.", "long_positions");
  w.sweep.steps = field<int>(s, "sweep.", "steps");
  w.sweep.ratio_position = field<int>(s, "sweep.", "ratio_position");
  w.input_seed = field<std::uint64_t>(j, "", "input_seed");
  w.threads = field<int>(j, "", "threads");
  w.validate();
  return w;
}

std::string describe_difference(const GateWorkload& a, const GateWorkload& b) {
  const json fa = to_json(a).flatten();
  const json fb = to_json(b).flatten();
  std::ostringstream out;
  int shown = 0;
  for (const auto& item : fa.items()) {
    const json other = fb.contains(item.key()) ? fb.at(item.key()) : json("(absent)");
    if (item.value() == other) continue;
    if (shown++ > 0) out << "; ";
    out << item.key().substr(1) << ": " << item.value().dump() << " vs " << other.dump();
  }
  for (const auto& item : fb.items()) {
    if (fa.contains(item.key())) continue;
    if (shown++ > 0) out << "; ";
    out << item.key().substr(1) << ": (absent) vs " << item.value().dump();
  }
  return out.str();
}

}  // namespace kvbench::gate
