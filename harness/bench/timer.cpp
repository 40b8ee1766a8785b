#include "harness/bench/timer.h"

namespace kvbench::bench {

TimerRegistry& TimerRegistry::global() {
  static TimerRegistry* registry = new TimerRegistry(Registry::global().devices());
  return *registry;
}

}  // namespace kvbench::bench
