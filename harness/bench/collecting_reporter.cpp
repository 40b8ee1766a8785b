#include "harness/bench/collecting_reporter.h"

#include <algorithm>

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
