// The planted variants of fake_impls.h as a kvbench plugin, so that check_cli.sh can show the
// kvbench binary refusing to time them (exit 4) while it times the others.
#include "tests/bench/fake_impls.h"

extern "C" void kvbench_register(kvbench::Registry& registry) {
  kvbench::testing::register_planted_fakes(registry, 300);
}
