// kvbench-gate-worker: the callgrind worker the gate runs (see ci/worker.h).
#include "ci/worker.h"
#include "harness/registry.h"

int main(int argc, char** argv) {
  return kvbench::gate::worker_main(kvbench::Registry::global(), argc, argv);
}
