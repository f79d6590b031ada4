/* Command batches, descriptor pools, barriers, windows and the row-chunked runner.
 *
 * Work is recorded into the current batch ("frame"); a batch is submitted when it holds
 * VK_BATCH_DISPATCHES dispatches or the host needs results, and VK_FRAMES batches may be in
 * flight, so the host records the next batch while the device runs the previous one. A
 * frame's descriptor pools, staging space and deferred frees are recycled once its fence
 * has signalled.
 *
 * Barriers: every transfer and dispatch declares the byte spans it reads and writes. A global
 * memory barrier is recorded only when a new access conflicts (RAW, WAR, WAW) with an access
 * made since the last barrier, so independent kernels (the q, k and v projections, the
 * gradients of separate parameters) run without one. The spans persist across batches because
 * a barrier also orders work submitted earlier on the queue. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vk_internal.h"

#define VK_POOL_SETS 512
#define VK_MAX_SPANS 64

gr_status vk_frames_init(vk_ctx *c)
{
    VkCommandPoolCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                  .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                  .queueFamilyIndex = c->qfam};
    VkResult r = vkCreateCommandPool(c->dev, &pi, NULL, &c->cmdpool);
    if (r != VK_SUCCESS) return gr_fail(GR_ERR_BACKEND, "vulkan: command pool: %s", vk_result_str(r));
    for (int i = 0; i < VK_FRAMES; i++) {
        vk_frame *f = &c->frames[i];
        VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                          .commandPool = c->cmdpool,
                                          .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = 1};
        if ((r = vkAllocateCommandBuffers(c->dev, &ai, &f->cmd)) != VK_SUCCESS)
            return gr_fail(GR_ERR_BACKEND, "vulkan: command buffer: %s", vk_result_str(r));
        VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
        if ((r = vkCreateFence(c->dev, &fi, NULL, &f->fence)) != VK_SUCCESS)
            return gr_fail(GR_ERR_BACKEND, "vulkan: fence: %s", vk_result_str(r));
    }
    return GR_OK;
}

static gr_status frame_retire(vk_ctx *c, vk_frame *f)
{
    if (f->submitted) {
        VkResult r = vkWaitForFences(c->dev, 1, &f->fence, VK_TRUE, UINT64_MAX);
        if (r != VK_SUCCESS) return gr_fail(GR_ERR_BACKEND, "vulkan: waiting for the device: %s", vk_result_str(r));
        vkResetFences(c->dev, 1, &f->fence);
        f->submitted = 0;
    }
    for (int i = 0; i < f->npools; i++) vkResetDescriptorPool(c->dev, f->pools[i], 0);
    f->cur_pool = 0;
    f->staging_used = 0;
    for (int i = 0; i < f->ndeferred; i++) vk_buffer_free(c, f->deferred[i]);
    f->ndeferred = 0;
    for (int i = 0; i < f->nviews; i++) vkDestroyBufferView(c->dev, f->views[i], NULL);
    f->nviews = 0;
    return GR_OK;
}

void vk_frames_destroy(vk_ctx *c)
{
    for (int i = 0; i < VK_FRAMES; i++) {
        vk_frame *f = &c->frames[i];
        if (f->recording) vkEndCommandBuffer(f->cmd);
        if (f->fence) {
            frame_retire(c, f);
            vkDestroyFence(c->dev, f->fence, NULL);
        }
        for (int j = 0; j < f->npools; j++) vkDestroyDescriptorPool(c->dev, f->pools[j], NULL);
        free(f->pools);
        free(f->deferred);
        free(f->views);
    }
    if (c->cmdpool) vkDestroyCommandPool(c->dev, c->cmdpool, NULL);
    free(c->reads);
    free(c->writes);
}

gr_status vk_cmd(vk_ctx *c, VkCommandBuffer *cmd)
{
    vk_frame *f = &c->frames[c->cur];
    if (!f->recording) {
        gr_status s = frame_retire(c, f);
        if (s != GR_OK) return s;
        VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                       .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
        VkResult r = vkBeginCommandBuffer(f->cmd, &bi);
        if (r != VK_SUCCESS) return gr_fail(GR_ERR_BACKEND, "vulkan: begin command buffer: %s", vk_result_str(r));
        f->recording = 1;
    }
    *cmd = f->cmd;
    return GR_OK;
}

static void barrier(vk_ctx *c, VkCommandBuffer cmd)
{
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                                           VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT};
    const VkPipelineStageFlags st = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
    vkCmdPipelineBarrier(cmd, st, st, 0, 1, &mb, 0, NULL, 0, NULL);
    c->nreads = c->nwrites = 0;
    c->barriers++;
}

static int overlaps(const vk_span *list, int n, const vk_span *s)
{
    for (int i = 0; i < n; i++)
        if (list[i].id == s->id && list[i].lo < s->hi && s->lo < list[i].hi) return 1;
    return 0;
}

static int push_span(vk_span **list, int *n, int *cap, vk_span s)
{
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 16;
        vk_span *l = realloc(*list, (size_t)nc * sizeof *l);
        if (!l) return 0;
        *list = l;
        *cap = nc;
    }
    (*list)[(*n)++] = s;
    return 1;
}

void vk_hazard(vk_ctx *c, VkCommandBuffer cmd, const vk_bind *binds, int n)
{
    vk_span sp[VK_MAX_BINDINGS + 2];
    int need = c->nreads + c->nwrites + n > VK_MAX_SPANS;
    for (int i = 0; i < n; i++) {
        const gr_buffer *b = binds[i].buf;
        /* Error reports are written with atomics: no ordering needed. */
        if (b == c->errbuf) { sp[i].id = 0; continue; }
        sp[i] = (vk_span){(uint64_t)(uintptr_t)b->block, b->off + binds[i].lo, b->off + binds[i].hi};
        if (overlaps(c->writes, c->nwrites, &sp[i]) || (binds[i].write && overlaps(c->reads, c->nreads, &sp[i])))
            need = 1;
    }
    if (need) barrier(c, cmd);
    for (int i = 0; i < n; i++) {
        if (sp[i].id == 0) continue;
        int ok = binds[i].write ? push_span(&c->writes, &c->nwrites, &c->capwrites, sp[i])
                                : push_span(&c->reads, &c->nreads, &c->capreads, sp[i]);
        /* Out of memory for the bookkeeping: fall back to a barrier before the next access. */
        if (!ok) c->nreads = c->nwrites = VK_MAX_SPANS;
    }
}

static gr_status alloc_set(vk_ctx *c, vk_frame *f, VkDescriptorSetLayout dsl, VkDescriptorSet *set)
{
    for (;;) {
        if (f->cur_pool == f->npools) {
            VkDescriptorPoolSize ps[2] = {{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, VK_POOL_SETS * VK_MAX_BINDINGS},
                                          {VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, VK_POOL_SETS * 2}};
            VkDescriptorPoolCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                             .maxSets = VK_POOL_SETS, .poolSizeCount = 2, .pPoolSizes = ps};
            VkDescriptorPool *np = realloc(f->pools, (size_t)(f->npools + 1) * sizeof *np);
            if (!np) return gr_fail(GR_ERR_NOMEM, "vulkan: out of memory");
            f->pools = np;
            VkResult r = vkCreateDescriptorPool(c->dev, &pi, NULL, &f->pools[f->npools]);
            if (r != VK_SUCCESS) return gr_fail(GR_ERR_BACKEND, "vulkan: descriptor pool: %s", vk_result_str(r));
            f->npools++;
        }
        VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                          .descriptorPool = f->pools[f->cur_pool], .descriptorSetCount = 1,
                                          .pSetLayouts = &dsl};
        VkResult r = vkAllocateDescriptorSets(c->dev, &ai, set);
        if (r == VK_SUCCESS) return GR_OK;
        if (r != VK_ERROR_OUT_OF_POOL_MEMORY && r != VK_ERROR_FRAGMENTED_POOL)
            return gr_fail(GR_ERR_BACKEND, "vulkan: descriptor set: %s", vk_result_str(r));
        f->cur_pool++;
    }
}

gr_status vk_dispatch3(vk_ctx *c, vk_pipeline *p, const vk_bind *binds, int nbind, const uint32_t *push,
                       int npush, uint32_t gx, uint32_t gy, uint32_t gz);
gr_status vk_dispatch3(vk_ctx *c, vk_pipeline *p, const vk_bind *binds, int nbind, const uint32_t *push,
                       int npush, uint32_t gx, uint32_t gy, uint32_t gz)
{
    if (nbind != p->nbind) return gr_fail(GR_ERR_INVALID, "vulkan: %s: %d bindings given", p->key, nbind);
    VkCommandBuffer cmd;
    gr_status s = vk_cmd(c, &cmd);
    if (s != GR_OK) return s;
    vk_frame *f = &c->frames[c->cur];
    VkDescriptorSet set;
    if ((s = alloc_set(c, f, p->dsl, &set)) != GR_OK) return s;
    VkDescriptorBufferInfo bi[VK_MAX_BINDINGS];
    VkWriteDescriptorSet w[VK_MAX_BINDINGS];
    VkBufferView views[VK_MAX_BINDINGS];
    if (p->texel_mask && f->nviews + nbind > f->capviews) {
        int cap = f->capviews ? f->capviews * 2 : 256;
        VkBufferView *nv = realloc(f->views, (size_t)cap * sizeof *nv);
        if (!nv) return gr_fail(GR_ERR_NOMEM, "vulkan: out of memory");
        f->views = nv;
        f->capviews = cap;
    }
    for (int i = 0; i < nbind; i++) {
        const gr_buffer *b = binds[i].buf;
        bi[i] = (VkDescriptorBufferInfo){b->block->buf, b->off + binds[i].lo, binds[i].hi - binds[i].lo};
        w[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = set,
                                      .dstBinding = (uint32_t)i, .descriptorCount = 1,
                                      .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .pBufferInfo = &bi[i]};
        if ((p->texel_mask >> i) & 1) {
            /* The view lives until the batch has completed (frame_retire). */
            VkBufferViewCreateInfo vi = {.sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO,
                                         .buffer = bi[i].buffer, .format = VK_FORMAT_R32G32B32A32_SFLOAT,
                                         .offset = bi[i].offset, .range = bi[i].range};
            VkResult r = vkCreateBufferView(c->dev, &vi, NULL, &views[i]);
            if (r != VK_SUCCESS) return gr_fail(GR_ERR_BACKEND, "vulkan: %s: buffer view: %s", p->key, vk_result_str(r));
            f->views[f->nviews++] = views[i];
            w[i].descriptorType = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER;
            w[i].pBufferInfo = NULL;
            w[i].pTexelBufferView = &views[i];
        }
    }
    vkUpdateDescriptorSets(c->dev, (uint32_t)nbind, w, 0, NULL);
    vk_hazard(c, cmd, binds, nbind);
    vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, p->pipe);
    vkCmdBindDescriptorSets(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, p->layout, 0, 1, &set, 0, NULL);
    if (npush > 0) vkCmdPushConstants(cmd, p->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, (uint32_t)npush * 4, push);
    vkCmdDispatch(cmd, gx, gy, gz);
    c->dispatches++;
    if (++f->ndispatch >= VK_BATCH_DISPATCHES) return vk_submit(c);
    return GR_OK;
}

gr_status vk_dispatch(vk_ctx *c, vk_pipeline *p, const vk_bind *binds, int nbind, const uint32_t *push,
                      int npush, uint32_t groups)
{
    /* A long 1-D grid folds into x * y; shaders rebuild the linear group index and drop the
     * excess groups of the last row. */
    uint32_t maxx = c->props.limits.maxComputeWorkGroupCount[0];
    uint32_t gx = groups < maxx ? groups : maxx;
    uint32_t gy = gx ? (groups + gx - 1) / gx : 0;
    if (gy > c->props.limits.maxComputeWorkGroupCount[1])
        return gr_fail(GR_ERR_UNSUPPORTED, "vulkan: %s: %u workgroups exceed the device's grid", p->key, groups);
    if (groups == 0) return GR_OK;
    return vk_dispatch3(c, p, binds, nbind, push, npush, gx, gy, 1);
}

gr_status vk_submit(vk_ctx *c)
{
    vk_frame *f = &c->frames[c->cur];
    if (!f->recording) return GR_OK;
    /* Make every device write visible to the host once the fence signals. */
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_HOST_READ_BIT};
    vkCmdPipelineBarrier(f->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
    VkResult r = vkEndCommandBuffer(f->cmd);
    f->recording = 0;
    f->ndispatch = 0;
    if (r != VK_SUCCESS) return gr_fail(GR_ERR_BACKEND, "vulkan: end command buffer: %s", vk_result_str(r));
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &f->cmd};
    r = vkQueueSubmit(c->queue, 1, &si, f->fence);
    if (r != VK_SUCCESS) return gr_fail(GR_ERR_BACKEND, "vulkan: queue submit: %s", vk_result_str(r));
    f->submitted = 1;
    c->submits++;
    c->cur = (c->cur + 1) % VK_FRAMES;
    return GR_OK;
}

static const char *err_kernel(uint32_t code)
{
    switch (code) {
    case VK_ERR_GATHER_ID: return "gather_rows: id";
    case VK_ERR_SCATTER_ID: return "scatter_add_rows: id";
    case VK_ERR_CE_LABEL: return "cross_entropy: label";
    case VK_ERR_CE_BWD_LABEL: return "cross_entropy_backward: label";
    default: return "kernel: index";
    }
}

gr_status vk_synchronize(void *bctx)
{
    vk_ctx *c = bctx;
    gr_status s = vk_submit(c);
    for (int k = 1; k <= VK_FRAMES; k++) {
        /* Oldest first. */
        vk_frame *f = &c->frames[(c->cur + k) % VK_FRAMES];
        if (f->submitted) {
            gr_status t = frame_retire(c, f);
            if (s == GR_OK) s = t;
        }
    }
    if (s != GR_OK) return s;
    c->nreads = c->nwrites = 0; /* the queue is idle: nothing left to order against */
    uint32_t *e = (uint32_t *)(c->errbuf->block->map + c->errbuf->off);
    if (e[0]) {
        /* Reported by a shader: [code, position, value, bound]. */
        s = gr_fail(GR_ERR_INVALID, "vulkan: %s %d at position %u is outside [0, %u)", err_kernel(e[0]),
                    (int32_t)e[2], e[1], e[3]);
        memset(e, 0, 16);
    }
    return s;
}

VkDeviceSize vk_budget(const vk_ctx *c)
{
    VkDeviceSize a = c->props.limits.minStorageBufferOffsetAlignment;
    return (c->max_range - (a > 16 ? a : 16)) / 16 * 16;
}

gr_status vk_window(vk_ctx *c, const gr_tensor *t, VkDeviceSize lo, VkDeviceSize hi, size_t esize, int write,
                    vk_bind *bind, uint32_t *base)
{
    VkDeviceSize a = c->props.limits.minStorageBufferOffsetAlignment;
    if (a < 4) a = 4;
    VkDeviceSize abs_lo = t->offset + lo, abs_hi = t->offset + hi;
    if (!t->buffer) return gr_fail(GR_ERR_INVALID, "vulkan: tensor %s has no buffer", t->name ? t->name : "(activation)");
    if (abs_hi > t->buffer->size)
        return gr_fail(GR_ERR_INVALID, "vulkan: tensor %s: bytes [%llu, %llu) overrun its %llu-byte buffer",
                       t->name ? t->name : "(activation)", (unsigned long long)abs_lo,
                       (unsigned long long)abs_hi, (unsigned long long)t->buffer->size);
    if (t->offset % esize)
        return gr_fail(GR_ERR_INVALID, "vulkan: tensor %s: offset %zu is not a multiple of its %zu-byte elements",
                       t->name ? t->name : "(activation)", t->offset, esize);
    VkDeviceSize start = abs_lo / a * a;
    /* Round the end to whole words so 8/16-bit element arrays keep a legal range. */
    VkDeviceSize end = (abs_hi + 3) / 4 * 4;
    if (end > t->buffer->size) end = abs_hi;
    if (end - start > c->max_range)
        return gr_fail(GR_ERR_UNSUPPORTED, "vulkan: tensor %s: a %llu-byte window exceeds the device's "
                       "maxStorageBufferRange (%llu)", t->name ? t->name : "(activation)",
                       (unsigned long long)(end - start), (unsigned long long)c->max_range);
    *bind = (vk_bind){t->buffer, start, end > start ? end : start + 4, write};
    *base = (uint32_t)((abs_lo - start) / esize);
    return GR_OK;
}

gr_status vk_run_rows(vk_ctx *c, vk_rowjob *j)
{
    if (j->rows <= 0) return GR_OK;
    VkDeviceSize budget = vk_budget(c);
    int64_t chunk = j->rows;
    for (int i = 0; i < j->nargs; i++) {
        VkDeviceSize es = gr_dtype_size(j->t[i]->dtype);
        char sb[96];
        if (j->row_elems[i] > 0) {
            VkDeviceSize rb = (VkDeviceSize)j->row_elems[i] * es;
            if (rb > budget)
                return gr_fail(GR_ERR_UNSUPPORTED, "vulkan: %s: one row of tensor %s %s (%llu bytes) exceeds the "
                               "device's storage-buffer window (%llu bytes)", j->kernel,
                               j->t[i]->name ? j->t[i]->name : "", gr_shape_str(j->t[i], sb, sizeof sb),
                               (unsigned long long)rb, (unsigned long long)budget);
            if ((int64_t)(budget / rb) < chunk) chunk = (int64_t)(budget / rb);
        } else if (gr_nbytes(j->t[i]) > budget) {
            return gr_fail(GR_ERR_UNSUPPORTED, "vulkan: %s: tensor %s %s (%zu bytes) exceeds the device's "
                           "storage-buffer window (%llu bytes)", j->kernel, j->t[i]->name ? j->t[i]->name : "",
                           gr_shape_str(j->t[i], sb, sizeof sb), gr_nbytes(j->t[i]), (unsigned long long)budget);
        }
    }
    /* Keep one chunk's invocation count within 32 bits. */
    int64_t per_row = j->elems_per_row > 0 ? j->elems_per_row : (int64_t)j->groups_per_row * j->pipe->local_size;
    if (per_row > 0 && chunk > ((int64_t)1 << 31) / per_row) chunk = ((int64_t)1 << 31) / per_row;
    if (chunk < 1) chunk = 1;
    for (int64_t r0 = 0; r0 < j->rows; r0 += chunk) {
        int64_t nr = j->rows - r0 < chunk ? j->rows - r0 : chunk;
        vk_bind b[VK_MAX_BINDINGS];
        for (int i = 0; i < j->nargs; i++) {
            size_t es = gr_dtype_size(j->t[i]->dtype);
            VkDeviceSize lo = 0, hi = gr_nbytes(j->t[i]);
            if (j->row_elems[i] > 0) {
                lo = (VkDeviceSize)r0 * (VkDeviceSize)j->row_elems[i] * es;
                hi = lo + (VkDeviceSize)nr * (VkDeviceSize)j->row_elems[i] * es;
            }
            gr_status s = vk_window(c, j->t[i], lo, hi, es, j->write[i], &b[i], &j->push[i]);
            if (s != GR_OK) return gr_fail_context(s, "vulkan: %s", j->kernel);
        }
        j->push[6] = (uint32_t)nr;
        j->push[7] = (uint32_t)r0;
        uint64_t groups = j->elems_per_row > 0
                              ? ((uint64_t)nr * (uint64_t)j->elems_per_row + j->pipe->local_size - 1) / j->pipe->local_size
                              : (uint64_t)nr * j->groups_per_row;
        gr_status s = vk_dispatch(c, j->pipe, b, j->nargs, j->push, j->npush, (uint32_t)groups);
        if (s != GR_OK) return s;
    }
    return GR_OK;
}
