// The CUDA emulation's controls, for its bindings and drivers.
#pragma once

#include <cuda_runtime.h>

#include <vector>

namespace sgs_emu {

enum class Scheduler { Fibers, Threads };

struct LaunchRecord {
  unsigned grid;
  unsigned block;
  size_t param_bytes;
};

void set_scheduler(Scheduler s);
void set_pending_error(cudaError_t err);
const std::vector<LaunchRecord>& launches();
void clear_launches();

}  // namespace sgs_emu
