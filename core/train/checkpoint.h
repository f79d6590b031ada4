/* Training checkpoints: only the trainable tensors (HF/LAVIS names, so a PyTorch user can load
 * them), the optimizer's moments and a JSON state (step, epoch, RNG, data position, resolved
 * config hash). Each file is written atomically, and the `latest` pointer is replaced last,
 * so a crash at any moment leaves the previous checkpoint intact and loadable.
 *
 *   RUN_DIR/checkpoints/step-00001234/{trainable.safetensors, optimizer.safetensors, state.json}
 *   RUN_DIR/checkpoints/latest          (the name of the newest complete checkpoint) */
#ifndef GRAFT_CORE_CHECKPOINT_H
#define GRAFT_CORE_CHECKPOINT_H

#include "graft/ops.h"
#include "train/optimizer.h"

/* Saves tensors[0..count) under names[i] (names NULL or names[i] NULL: the tensor's name) and,
 * when opt is not NULL, its moments as "m.NAME"/"v.NAME" where NAME is the name of optimizer
 * parameter i given by opt_names[i] (or its tensor name). `state_json` is stored verbatim.
 * Keeps the newest `keep` checkpoints (>= 1). */
gr_status gr_checkpoint_save(gr_ctx *ctx, const char *run_dir, int64_t step,
                             gr_tensor *const *tensors, const char *const *names, int count,
                             const gr_optimizer *opt, const char *const *opt_names,
                             const char *state_json, int keep);

/* Path of the newest complete checkpoint directory (malloc'd), or GR_ERR_NOT_FOUND. */
gr_status gr_checkpoint_latest(const char *run_dir, char **dir);

/* Loads tensors by name into `trainable` (shapes must match) and, when opt is not NULL, the
 * moments and step count; *state_json gets the malloc'd state. Errors name file and tensor. */
gr_status gr_checkpoint_load(gr_ctx *ctx, const char *ckpt_dir, gr_tensor *const *tensors,
                             const char *const *names, int count, gr_optimizer *opt,
                             const char *const *opt_names, char **state_json);

/* Loads named tensors (names as in gr_checkpoint_save) from any safetensors file into matching
 * parameters (used to take a VPG from a source run); names absent from the file are an error
 * naming them. */
gr_status gr_load_tensors(gr_ctx *ctx, const char *path, gr_tensor *const *params,
                          const char *const *names, int count);

#endif
