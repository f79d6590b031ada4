/* The core side of the engine (graft/engine.h): creating it for `graft train`, running the
 * configured strategy, opening models for `graft eval` / `graft generate`. */
#ifndef GRAFT_CORE_ENGINE_INTERNAL_H
#define GRAFT_CORE_ENGINE_INTERNAL_H

#include "graft/engine.h"
#include "text/tokenizer.h"
#include "train/vlm_task.h"
#include "vlm/vlm.h"

/* Declares the engine's keys (model.*, data.*, train.*, gen.*, strategy.name). */
gr_status gr_engine_schema(void);

/* A new run in run_dir (resume = 0) or the continuation of one (resume = 1: run_dir's
 * config.cfg is the configuration, its latest checkpoint the position). cfg is owned by the
 * engine afterwards (freed on failure too). backend: opened by the caller, outlives the engine. */
gr_status gr_engine_create(gr_config *cfg, gr_backend *backend, const char *run_dir, int resume,
                           gr_engine **out);
/* Runs strategy.name's plugin, then writes report.json. */
gr_status gr_engine_run_strategy(gr_engine *e);
void gr_engine_free(gr_engine *e);

/* For eval/generate: an engine without a run directory (nothing is logged); owns cfg. */
gr_status gr_engine_create_bare(gr_config *cfg, gr_backend *backend, gr_engine **out);
gr_vlm *gr_engine_model_vlm(gr_engine_model *m);
const gr_tokenizer *gr_engine_model_tokenizer(const gr_engine_model *m);
/* Image preprocessing for a model (preprocessor_config.json of the vision dir, or CLIP-style
 * resizing to the tower's image size). */
gr_status gr_engine_model_preproc(const gr_engine_model *m, gr_image_preproc *pp);
/* Generation settings from gen.* for a task ("caption"/"vqa"). */
gr_status gr_engine_gen_config(const gr_engine *e, const gr_engine_model *m, const char *task, gr_vlm_gen *gen);
/* An evaluation of model m on a dataset file (data.format), keeping predictions. */
gr_status gr_engine_eval_file(gr_engine *e, gr_engine_model *m, const char *task, const char *path,
                              int blind, gr_vlm_eval_out *out);

#endif
