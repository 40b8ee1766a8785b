#include "properties/runner.h"

#include <rapidcheck.h>
#include <rapidcheck/detail/Configuration.h>
#include <rapidcheck/detail/TestListener.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <sstream>

namespace kvbench::props {

std::string test_id(const Property& property, const ImplInfo& impl) {
  return property.name + "/" + impl.name;
}

rc::detail::TestParams configured_params() { return rc::detail::configuration().testParams; }

bool reproducing() { return !rc::detail::configuration().reproduce.empty(); }

namespace {

// Counts cases and shrinks; prints nothing (the callers decide what to show).
class CountingListener : public rc::detail::TestListener {
 public:
  explicit CountingListener(const Progress& progress) : progress_(progress) {}
  void onTestCaseFinished(const rc::detail::CaseDescription&) override {
    ++cases_;
    if (progress_) progress_(cases_, shrinks_);
  }
  void onShrinkTried(const rc::detail::CaseDescription&, bool accepted) override {
    if (!accepted) return;
    ++shrinks_;
    if (progress_) progress_(cases_, shrinks_);
  }
  void onTestFinished(const rc::detail::TestMetadata&, const rc::detail::TestResult&) override {}
  int cases() const { return cases_; }
  int shrinks() const { return shrinks_; }

 private:
  const Progress& progress_;
  int cases_ = 0;
  int shrinks_ = 0;
};

// The line RapidCheck's own ReproduceListener prints, for this one test.
std::string reproduce_line(const std::string& id, const rc::detail::Reproduce& reproduce) {
  rc::detail::Configuration config;
  config.reproduce[id] = reproduce;
  return "RC_PARAMS=\"" + rc::detail::configToMinimalString(config) + "\"";
}

}  // namespace

Outcome run_property(const Property& property, const ImplInfo& impl,
                     const rc::detail::TestParams& params, const Progress& progress) {
  Outcome out;
  const std::string id = test_id(property, impl);
  const std::string unavailable = impl.why_unavailable();
  if (!unavailable.empty()) {
    out.verdict = Verdict::skipped;
    out.reason = "unavailable: " + unavailable;
    return out;
  }
  std::string why_not;
  if (property.applies && !property.applies(impl, &why_not)) {
    out.verdict = Verdict::skipped;
    out.reason = "not applicable: " + why_not;
    return out;
  }
  const auto& reproduce = rc::detail::configuration().reproduce;
  if (!reproduce.empty() && reproduce.count(id) == 0) {
    out.verdict = Verdict::skipped;
    out.reason = "RC_PARAMS reproduces other tests";
    return out;
  }

  rc::detail::TestMetadata metadata;
  metadata.id = id;
  metadata.description = property.description;
  CountingListener listener(progress);
  const auto start = std::chrono::steady_clock::now();
  rc::detail::TestParams scaled = params;
  scaled.maxSuccess =
      std::max(1, static_cast<int>((static_cast<long long>(params.maxSuccess) *
                                        property.cases_per_100 + 99) / 100));
  auto recorder = std::make_unique<CoverageRecorder>();  // observes this thread until reset
  const rc::detail::TestResult result = rc::detail::checkTestable(
      [&property, &impl] { property.body(impl); }, metadata, scaled, listener);
  out.coverage = recorder->coverage();
  recorder.reset();
  out.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  out.cases = listener.cases();
  out.shrinks = listener.shrinks();

  rc::detail::SuccessResult success;
  rc::detail::FailureResult failure;
  std::ostringstream message;
  rc::detail::printResultMessage(result, message);
  if (result.match(success)) {
    out.verdict = Verdict::passed;
    out.cases = success.numSuccess;
    if (property.note) out.note = property.note(impl);
  } else if (result.match(failure)) {
    out.verdict = Verdict::failed;
    out.cases = failure.numSuccess + 1;
    out.report = message.str();
    out.reproduce = reproduce_line(id, failure.reproduce);
  } else if (reproduce.count(id) != 0 && message.str().find("not a failure") != std::string::npos) {
    // Replaying a reproduce string whose case passes now (the bug is fixed): RapidCheck
    // calls that an error, but the one case asked for has passed.
    out.verdict = Verdict::passed;
    out.cases = 1;
    out.note = "the reproduced case passes";
  } else {  // gave up (too many discards) or RapidCheck's own error
    out.verdict = Verdict::failed;
    out.report = message.str();
  }
  return out;
}

}  // namespace kvbench::props
