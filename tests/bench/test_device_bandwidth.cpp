// The host-side half of device timing in benchmarks: which devices get a bandwidth
// measurement, the JSON the runner writes for it (from plain numbers), that a device that
// cannot be measured is recorded rather than thrown, and which timer each device gets.
// Nothing here needs a GPU.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "harness/bench/device_bandwidth.h"
#include "harness/bench/timer.h"
#include "harness/device_probes.h"
#include "harness/error.h"
#include "harness/registry.h"

namespace kvbench::bench {
namespace {

ImplInfo impl_on(const std::string& name, const std::string& device) {
  ImplInfo info;
  info.name = name;
  info.device = device;
  return info;
}

TEST(DeviceBandwidth, DevicesOfListsEachNonHostDeviceOnce) {
  const ImplInfo a = impl_on("naive", "cpu"), b = impl_on("cuda_cached", "cuda"),
                 c = impl_on("other_cuda", "cuda"), d = impl_on("npu_impl", "npu");
  EXPECT_TRUE(devices_of({&a}).empty());
  EXPECT_EQ(devices_of({&a, &b, &c, &d}), (std::vector<std::string>{"cuda", "npu"}));
}

TEST(DeviceBandwidth, JsonKeepsTheBestPassOfEachKindAndSaysHowBytesCount) {
  DeviceBandwidth m{"cuda", "Test GPU", {}, ""};
  const std::size_t gib = std::size_t{1} << 30;
  // 1 GiB read in 0.5 ms best / 0.6 ms median; copy of 1 GiB counted as 2 GiB in 1 ms.
  m.runs.push_back({{"read-only streaming", gib, gib, "read once", 20, 0.5, 0.6}, "before"});
  m.runs.push_back({{"device-to-device copy", gib, 2 * gib, "read + write", 20, 1.0, 1.1}, "before"});
  m.runs.push_back({{"read-only streaming", gib, gib, "read once", 20, 0.4, 0.7}, "after"});
  m.runs.push_back({{"device-to-device copy", gib, 2 * gib, "read + write", 20, 1.25, 1.3}, "after"});
  const nlohmann::json j = device_bandwidth_json(m);
  const double g = static_cast<double>(gib);
  EXPECT_EQ(j["device"], "cuda");
  EXPECT_EQ(j["name"], "Test GPU");
  EXPECT_DOUBLE_EQ(j["read_bytes_per_second"].get<double>(), g / 0.4e-3);       // "after"
  EXPECT_DOUBLE_EQ(j["copy_bytes_per_second"].get<double>(), 2 * g / 1.0e-3);   // "before"
  EXPECT_EQ(j["copy_bytes_counted_per_byte_copied"], 2);
  EXPECT_NE(j["copy_counts"].get<std::string>().find("read + bytes written"), std::string::npos);
  EXPECT_EQ(j["buffer_bytes"].get<std::size_t>(), gib);
  ASSERT_EQ(j["runs"].size(), 4u);
  EXPECT_DOUBLE_EQ(j["runs"][0]["median_bytes_per_second"].get<double>(), g / 0.6e-3);
  EXPECT_FALSE(j.contains("error"));
}

TEST(DeviceBandwidth, AnUnmeasurableDeviceIsRecordedNotThrown) {
  DeviceBandwidth m{"npu", "", {}, ""};
  EXPECT_NO_THROW(measure_device_bandwidth("before", m));
  EXPECT_NE(m.error.find("'npu'"), std::string::npos) << m.error;
  EXPECT_TRUE(m.runs.empty());
  const nlohmann::json j = device_bandwidth_json(m);
  EXPECT_EQ(j["read_bytes_per_second"].get<double>(), 0.0);
  EXPECT_EQ(j["error"], m.error);
}

TEST(Timer, CudaImplementationsGetCudaEventsInCudaBuildsAndTheHostClockOtherwise) {
  // Making a timer touches no device (the events are created at the first start()), so this
  // runs on a machine without a GPU.
  const auto cuda = TimerRegistry::global().make(impl_on("cuda_cached", "cuda"));
  const auto cpu = TimerRegistry::global().make(impl_on("cpu_cached", "cpu"));
  EXPECT_EQ(cpu->describe(), "host steady_clock");
#if KVBENCH_HAVE_CUDA
  EXPECT_NE(cuda->describe().find("CUDA events"), std::string::npos) << cuda->describe();
#else
  EXPECT_EQ(cuda->describe(), "host steady_clock");
#endif
}

// The benchmark reaches a device only through what its implementation registered
// (harness/device_probes.h): a made-up device's probe and timer are used as registered.
TEST(DeviceProbes, TheBenchUsesTheProbeAndTimerRegisteredForTheDevice) {
  DeviceProbes& probes = Registry::global().devices();
  BandwidthProbe probe;
  probe.device_name = [] { return std::string("Fake Device 9000"); };
  probe.measure = [] {
    BandwidthMeasurement read;
    read.kind = "read-only streaming";
    read.buffer_bytes = read.bytes_counted = 1000;
    read.counting = "read once";
    read.repetitions = 3;
    read.best_ms = 1e-3;  // 1000 bytes in 1 us: 1e9 B/s
    read.median_ms = 2e-3;
    return std::vector<BandwidthMeasurement>{read};
  };
  probes.set_bandwidth_probe("fakedev", probe);
  DeviceBandwidth m{"fakedev", "", {}, ""};
  measure_device_bandwidth("before", m);
  EXPECT_EQ(m.error, "");
  EXPECT_EQ(m.name, "Fake Device 9000");
  ASSERT_EQ(m.runs.size(), 1u);
  EXPECT_EQ(m.runs[0].when, "before");
  EXPECT_DOUBLE_EQ(device_bandwidth_json(m)["read_bytes_per_second"].get<double>(), 1e9);

  // A probe that throws is recorded, not thrown (and not retried).
  probe.measure = []() -> std::vector<BandwidthMeasurement> { fail("fake device is gone"); };
  probes.set_bandwidth_probe("fakedev_broken", probe);
  DeviceBandwidth broken{"fakedev_broken", "", {}, ""};
  EXPECT_NO_THROW(measure_device_bandwidth("before", broken));
  EXPECT_EQ(broken.error, "fake device is gone");
  EXPECT_TRUE(broken.runs.empty());

  struct FakeTimer : RegionTimer {
    void start() override {}
    double stop() override { return 0.25; }
    std::string describe() const override { return "fake device clock"; }
  };
  TimerRegistry::global().set("fakedev", [](const ImplInfo&) -> std::unique_ptr<RegionTimer> {
    return std::make_unique<FakeTimer>();
  });
  EXPECT_EQ(TimerRegistry::global().make(impl_on("fake_impl", "fakedev"))->describe(),
            "fake device clock");
  EXPECT_EQ(probes.make_timer(impl_on("fake_impl", "fakedev"))->stop(), 0.25);
  EXPECT_THROW(probes.set_timer("fakedev", nullptr), Error);
  EXPECT_THROW(probes.set_bandwidth_probe("fakedev", BandwidthProbe{}), Error);
}

}  // namespace
}  // namespace kvbench::bench
