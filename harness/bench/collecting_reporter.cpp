#include "harness/bench/collecting_reporter.h"

#include <algorithm>
#include <cmath>

namespace kvbench::bench {

bool CollectingReporter::ReportContext(const Context& context) {
  if (display_ && !context_shown_) {
    Context wide = context;
    wide.name_field_width = name_width_;
    display_->ReportContext(wide);
  }
  context_shown_ = true;
  return true;
}

void CollectingReporter::ReportRuns(const std::vector<Run>& runs) {
  if (display_) display_->ReportRuns(runs);
  for (Run run : runs) {
    run.family_index = family_index_;
    run.per_family_instance_index = 0;
    run.statistics = nullptr;  // points into the benchmark, which is cleared after it ran
    // A counter that is 0 in every repetition (prefix_hit_tokens without a prefix cache,
    // cow_copies of a contiguous cache) has a coefficient of variation of 0 / 0: Google
    // Benchmark's JSONReporter would write NaN, which is not JSON. Such an aggregate counter
    // says nothing and is left out; the iteration runs keep the counter itself.
    for (auto it = run.counters.begin(); it != run.counters.end();) {
      it = std::isfinite(it->second.value) ? std::next(it) : run.counters.erase(it);
    }
    current_.push_back(run);
  }
}

void CollectingReporter::begin(int family_index) {
  family_index_ = family_index;
  current_.clear();
}

void CollectingReporter::finish() {
  if (display_) display_->Finalize();
}

double seconds_per_iteration(const std::vector<benchmark::BenchmarkReporter::Run>& runs) {
  std::vector<double> seconds;
  for (const auto& run : runs) {
    if (run.run_type != benchmark::BenchmarkReporter::Run::RT_Iteration) continue;
    if (run.error_occurred || run.iterations <= 0) continue;
    seconds.push_back(run.real_accumulated_time / static_cast<double>(run.iterations));
  }
  if (seconds.empty()) return -1;
  std::sort(seconds.begin(), seconds.end());
  return seconds[seconds.size() / 2];
}

}  // namespace kvbench::bench
