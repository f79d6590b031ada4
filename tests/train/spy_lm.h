/* A test-only language-model plugin ("spy"): it opens the real plugin named by the config's
 * model_type and forwards every call to it, recording what the last forward() received, so a
 * test can see the exact batch a task built. spy_lm_record() is exported for dlsym. */
#ifndef GRAFT_TEST_SPY_LM_H
#define GRAFT_TEST_SPY_LM_H

#include <stdint.h>

#define SPY_MAX_INTS 8192
#define SPY_MAX_FLOATS 65536

typedef struct spy_record {
    int forwards;                  /* forward() calls so far */
    int64_t batch, seq, label_len; /* of the last one */
    int has_ids, has_mask, has_labels;
    int32_t ids[SPY_MAX_INTS], mask[SPY_MAX_INTS], labels[SPY_MAX_INTS];
    int64_t prefix_shape[3];       /* 0 without a soft prompt */
    float prefix[SPY_MAX_FLOATS];
} spy_record;

typedef spy_record *(*spy_record_fn)(void);
#define SPY_RECORD_SYMBOL "spy_lm_record"

#endif
