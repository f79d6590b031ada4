/* Device memory: large blocks, each one VkDeviceMemory bound to one VkBuffer, suballocated
 * first-fit with coalescing free lists. A gr_buffer is (block, offset, size); kernels bind
 * windows of the block's VkBuffer. Uploads go straight into mapped memory when the device is
 * idle and shares host memory, else through the batch's staging buffer, in queue order. */
#include <stdlib.h>
#include <string.h>

#include "vk_internal.h"

#define VK_BLOCK_BYTES ((VkDeviceSize)256 << 20)
#define VK_STAGING_BYTES ((VkDeviceSize)32 << 20)
#define VK_ALIGN 256
#define VK_HOST_BLOCK_BYTES ((VkDeviceSize)1 << 20)

static VkDeviceSize align_up(VkDeviceSize x, VkDeviceSize a) { return (x + a - 1) / a * a; }

/* Texel-buffer usage lets the subgroup matmul read operands through RGBA32F views. */
static const VkBufferUsageFlags buffer_usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
                                               VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT |
                                               VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                               VK_BUFFER_USAGE_TRANSFER_DST_BIT;

static int find_type(const vk_ctx *c, uint32_t bits, VkMemoryPropertyFlags want)
{
    for (uint32_t i = 0; i < c->memprops.memoryTypeCount; i++)
        if ((bits & (1u << i)) && (c->memprops.memoryTypes[i].propertyFlags & want) == want) return (int)i;
    return -1;
}

gr_status vk_memory_init(vk_ctx *c)
{
    VkBufferCreateInfo bci = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = 4096,
                              .usage = buffer_usage, .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkBuffer probe;
    VkResult r = vkCreateBuffer(c->dev, &bci, NULL, &probe);
    if (r != VK_SUCCESS) return gr_fail(GR_ERR_BACKEND, "vulkan: vkCreateBuffer: %s", vk_result_str(r));
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(c->dev, probe, &req);
    vkDestroyBuffer(c->dev, probe, NULL);

    const VkMemoryPropertyFlags hv = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    int dl = find_type(c, req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
    int dlhv = find_type(c, req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT | hv);
    int host = find_type(c, req.memoryTypeBits, hv | VK_MEMORY_PROPERTY_HOST_CACHED_BIT);
    if (host < 0) host = find_type(c, req.memoryTypeBits, hv);
    if (dl < 0) dl = host;
    if (dl < 0 || host < 0)
        return gr_fail(GR_ERR_UNSUPPORTED, "vulkan: %s has no usable memory type for storage buffers",
                       c->props.deviceName);
    /* Device-local and host-visible memory is the main pool only when it is the device's big
     * heap (unified memory); a small BAR window on a discrete GPU is not. */
    if (dlhv >= 0) {
        uint32_t h1 = c->memprops.memoryTypes[dlhv].heapIndex, h0 = c->memprops.memoryTypes[dl].heapIndex;
        if (c->memprops.memoryHeaps[h1].size >= c->memprops.memoryHeaps[h0].size) dl = dlhv;
    }
    c->dev_type = (uint32_t)dl;
    c->host_type = (uint32_t)host;
    c->dev_is_host = (c->memprops.memoryTypes[dl].propertyFlags & hv) == hv;
    c->align = align_up(VK_ALIGN, req.alignment);
    if (c->props.limits.minStorageBufferOffsetAlignment > c->align)
        c->align = align_up(c->props.limits.minStorageBufferOffsetAlignment, VK_ALIGN);

    VkPhysicalDeviceMaintenance3Properties m3 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &m3};
    vkGetPhysicalDeviceProperties2(c->pdev, &p2);
    c->max_alloc = m3.maxMemoryAllocationSize ? m3.maxMemoryAllocationSize : ((VkDeviceSize)1 << 30);
    VkDeviceSize heap = c->memprops.memoryHeaps[c->memprops.memoryTypes[dl].heapIndex].size;
    if (c->max_alloc > heap) c->max_alloc = heap;
    c->block_size = VK_BLOCK_BYTES < c->max_alloc ? VK_BLOCK_BYTES : c->max_alloc;
    c->next_buffer_id = 1;
    /* Shaders report out-of-range ids here; the host reads it after each synchronisation. */
    gr_status s = vk_buffer_alloc_kind(c, 64, 1, &c->errbuf);
    if (s != GR_OK) return gr_fail_context(s, "vulkan: error-report buffer");
    if (!c->errbuf->block->map)
        return gr_fail(GR_ERR_UNSUPPORTED, "vulkan: host-visible memory cannot be mapped");
    memset(c->errbuf->block->map + c->errbuf->off, 0, 64);
    return GR_OK;
}

static void block_destroy(vk_ctx *c, vk_block *b)
{
    if (b->map) vkUnmapMemory(c->dev, b->mem);
    vkDestroyBuffer(c->dev, b->buf, NULL);
    vkFreeMemory(c->dev, b->mem, NULL);
    free(b->free);
    free(b);
}

void vk_memory_destroy(vk_ctx *c)
{
    if (c->errbuf) vk_buffer_free(c, c->errbuf);
    c->errbuf = NULL;
    vk_block *b = c->blocks;
    while (b) {
        vk_block *n = b->next;
        block_destroy(c, b);
        b = n;
    }
    c->blocks = NULL;
}

static gr_status block_create(vk_ctx *c, VkDeviceSize size, int host, int dedicated, vk_block **out)
{
    vk_block *b = calloc(1, sizeof *b);
    if (!b) return gr_fail(GR_ERR_NOMEM, "vulkan: out of host memory");
    b->size = size;
    b->host = host;
    b->dedicated = dedicated;
    VkBufferCreateInfo bci = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = size,
                              .usage = buffer_usage, .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkResult r = vkCreateBuffer(c->dev, &bci, NULL, &b->buf);
    if (r != VK_SUCCESS) {
        free(b);
        return gr_fail(GR_ERR_NOMEM, "vulkan: cannot create a %llu-byte buffer (%s)",
                       (unsigned long long)size, vk_result_str(r));
    }
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(c->dev, b->buf, &req);
    uint32_t type = host ? c->host_type : c->dev_type;
    VkMemoryAllocateInfo mai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                                .allocationSize = req.size, .memoryTypeIndex = type};
    r = vkAllocateMemory(c->dev, &mai, NULL, &b->mem);
    if (r != VK_SUCCESS) {
        vkDestroyBuffer(c->dev, b->buf, NULL);
        free(b);
        return gr_fail(GR_ERR_NOMEM, "vulkan: cannot allocate %llu MiB of device memory on %s (%s)",
                       (unsigned long long)(size >> 20), c->props.deviceName, vk_result_str(r));
    }
    vkBindBufferMemory(c->dev, b->buf, b->mem, 0);
    if (c->memprops.memoryTypes[type].propertyFlags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) {
        void *p;
        if (vkMapMemory(c->dev, b->mem, 0, VK_WHOLE_SIZE, 0, &p) == VK_SUCCESS) b->map = p;
    }
    b->free = malloc(sizeof *b->free);
    if (!b->free) {
        block_destroy(c, b);
        return gr_fail(GR_ERR_NOMEM, "vulkan: out of host memory");
    }
    b->free[0] = (vk_range){0, size};
    b->nfree = 1;
    b->capfree = 1;
    b->next = c->blocks;
    c->blocks = b;
    *out = b;
    return GR_OK;
}

static int block_take(vk_block *b, VkDeviceSize size, VkDeviceSize *off)
{
    for (int i = 0; i < b->nfree; i++) {
        if (b->free[i].size < size) continue;
        *off = b->free[i].off;
        b->free[i].off += size;
        b->free[i].size -= size;
        if (b->free[i].size == 0) {
            memmove(b->free + i, b->free + i + 1, (size_t)(b->nfree - i - 1) * sizeof *b->free);
            b->nfree--;
        }
        b->used += size;
        return 1;
    }
    return 0;
}

static int block_give(vk_block *b, VkDeviceSize off, VkDeviceSize size)
{
    int i = 0;
    while (i < b->nfree && b->free[i].off < off) i++;
    int merge_prev = i > 0 && b->free[i - 1].off + b->free[i - 1].size == off;
    int merge_next = i < b->nfree && off + size == b->free[i].off;
    b->used -= size;
    if (merge_prev && merge_next) {
        b->free[i - 1].size += size + b->free[i].size;
        memmove(b->free + i, b->free + i + 1, (size_t)(b->nfree - i - 1) * sizeof *b->free);
        b->nfree--;
    } else if (merge_prev) {
        b->free[i - 1].size += size;
    } else if (merge_next) {
        b->free[i].off = off;
        b->free[i].size += size;
    } else {
        if (b->nfree == b->capfree) {
            int cap = b->capfree * 2;
            vk_range *f = realloc(b->free, (size_t)cap * sizeof *f);
            if (!f) return 0; /* the range leaks inside the block; memory stays valid */
            b->free = f;
            b->capfree = cap;
        }
        memmove(b->free + i + 1, b->free + i, (size_t)(b->nfree - i) * sizeof *b->free);
        b->free[i] = (vk_range){off, size};
        b->nfree++;
    }
    return 1;
}

gr_status vk_buffer_alloc_kind(vk_ctx *c, size_t bytes, int host, gr_buffer **out)
{
    VkDeviceSize size = align_up(bytes ? bytes : 1, c->align);
    if (size > c->max_alloc)
        return gr_fail(GR_ERR_NOMEM, "vulkan: a %zu-byte buffer exceeds the device's largest allocation "
                       "(%llu bytes)", bytes, (unsigned long long)c->max_alloc);
    gr_buffer *buf = calloc(1, sizeof *buf);
    if (!buf) return gr_fail(GR_ERR_NOMEM, "vulkan: out of host memory");
    vk_block *b = NULL;
    VkDeviceSize off = 0;
    /* Host memory only holds small things (error reports); its blocks are small. */
    VkDeviceSize block_size = host ? VK_HOST_BLOCK_BYTES : c->block_size;
    if (size > block_size / 2) {
        gr_status s = block_create(c, size, host, 1, &b);
        if (s != GR_OK) { free(buf); return s; }
        block_take(b, size, &off);
    } else {
        for (b = c->blocks; b; b = b->next)
            if (!b->dedicated && b->host == host && block_take(b, size, &off)) break;
        if (!b) {
            gr_status s = block_create(c, block_size, host, 0, &b);
            if (s != GR_OK) { free(buf); return s; }
            block_take(b, size, &off);
        }
    }
    buf->block = b;
    buf->off = off;
    buf->size = size;
    buf->id = c->next_buffer_id++;
    c->bytes_in_use += size;
    if (c->bytes_in_use > c->peak_bytes) c->peak_bytes = c->bytes_in_use;
    *out = buf;
    return GR_OK;
}

gr_status vk_buffer_alloc(void *bctx, size_t bytes, gr_buffer **out)
{
    return vk_buffer_alloc_kind(bctx, bytes, 0, out);
}

void vk_buffer_free(void *bctx, gr_buffer *buf)
{
    vk_ctx *c = bctx;
    if (!buf) return;
    vk_block *b = buf->block;
    c->bytes_in_use -= buf->size;
    block_give(b, buf->off, buf->size);
    /* Dedicated blocks go back to the driver at once; shared ones stay for reuse. */
    if (b->dedicated) {
        vk_block **pp = &c->blocks;
        while (*pp != b) pp = &(*pp)->next;
        *pp = b->next;
        block_destroy(c, b);
    }
    free(buf);
}

gr_status vk_buffer_free_later(vk_ctx *c, gr_buffer *buf)
{
    vk_frame *f = &c->frames[c->cur];
    if (f->ndeferred == f->capdeferred) {
        int cap = f->capdeferred ? f->capdeferred * 2 : 16;
        gr_buffer **d = realloc(f->deferred, (size_t)cap * sizeof *d);
        if (!d) {
            /* Cannot defer: wait for the work instead, then free. */
            gr_status s = vk_synchronize(c);
            vk_buffer_free(c, buf);
            return s;
        }
        f->deferred = d;
        f->capdeferred = cap;
    }
    f->deferred[f->ndeferred++] = buf;
    return GR_OK;
}

static gr_status check_range(const gr_buffer *b, size_t offset, size_t bytes, const char *what)
{
    if (!b) return gr_fail(GR_ERR_INVALID, "vulkan: %s: NULL buffer", what);
    if (offset > b->size || bytes > b->size - offset)
        return gr_fail(GR_ERR_INVALID, "vulkan: %s of %zu bytes at offset %zu overruns a %llu-byte buffer",
                       what, bytes, offset, (unsigned long long)b->size);
    return GR_OK;
}

static int device_idle(const vk_ctx *c)
{
    for (int i = 0; i < VK_FRAMES; i++)
        if (c->frames[i].submitted || c->frames[i].ndispatch || c->frames[i].recording) return 0;
    return 1;
}

gr_status vk_upload(void *bctx, gr_buffer *dst, size_t offset, const void *src, size_t bytes)
{
    vk_ctx *c = bctx;
    gr_status s = check_range(dst, offset, bytes, "upload");
    if (s != GR_OK || bytes == 0) return s;
    if (dst->block->map && device_idle(c)) {
        memcpy(dst->block->map + dst->off + offset, src, bytes);
        return GR_OK;
    }
    const uint8_t *p = src;
    while (bytes > 0) {
        VkCommandBuffer cmd;
        if ((s = vk_cmd(c, &cmd)) != GR_OK) return s;
        vk_bind w = {dst, offset, offset + bytes, 1};
        /* Small aligned updates ride in the command buffer itself. */
        if (bytes <= 65536 && bytes % 4 == 0 && (dst->off + offset) % 4 == 0) {
            vk_hazard(c, cmd, &w, 1);
            vkCmdUpdateBuffer(cmd, dst->block->buf, dst->off + offset, bytes, p);
            return GR_OK;
        }
        VkDeviceSize chunk = bytes < VK_STAGING_BYTES ? bytes : VK_STAGING_BYTES;
        gr_buffer view;
        void *stage = vk_staging(c, chunk, &view);
        if (!stage) {
            if ((s = vk_submit(c)) != GR_OK) return s;
            continue;
        }
        memcpy(stage, p, chunk);
        vk_bind b[2] = {{&view, 0, chunk, 0}, {dst, offset, offset + chunk, 1}};
        vk_hazard(c, cmd, b, 2);
        VkBufferCopy region = {view.off, dst->off + offset, chunk};
        vkCmdCopyBuffer(cmd, view.block->buf, dst->block->buf, 1, &region);
        p += chunk;
        offset += chunk;
        bytes -= chunk;
    }
    return GR_OK;
}

gr_status vk_download(void *bctx, gr_buffer *src, size_t offset, void *dst, size_t bytes)
{
    vk_ctx *c = bctx;
    gr_status s = check_range(src, offset, bytes, "download");
    if (s != GR_OK) return s;
    if ((s = vk_synchronize(c)) != GR_OK || bytes == 0) return s;
    if (src->block->map) {
        memcpy(dst, src->block->map + src->off + offset, bytes);
        return GR_OK;
    }
    uint8_t *p = dst;
    while (bytes > 0) {
        VkDeviceSize chunk = bytes < VK_STAGING_BYTES ? bytes : VK_STAGING_BYTES;
        VkCommandBuffer cmd;
        if ((s = vk_cmd(c, &cmd)) != GR_OK) return s;
        gr_buffer view;
        void *stage = vk_staging(c, chunk, &view);
        if (!stage) return gr_fail(GR_ERR_BACKEND, "vulkan: download: no staging memory");
        vk_bind b[2] = {{src, offset, offset + chunk, 0}, {&view, 0, chunk, 1}};
        vk_hazard(c, cmd, b, 2);
        VkBufferCopy region = {src->off + offset, view.off, chunk};
        vkCmdCopyBuffer(cmd, src->block->buf, view.block->buf, 1, &region);
        if ((s = vk_synchronize(c)) != GR_OK) return s;
        memcpy(p, stage, chunk);
        p += chunk;
        offset += chunk;
        bytes -= chunk;
    }
    return GR_OK;
}

gr_status vk_copy(void *bctx, gr_buffer *dst, size_t dst_offset, gr_buffer *src, size_t src_offset,
                  size_t bytes)
{
    vk_ctx *c = bctx;
    gr_status s = check_range(dst, dst_offset, bytes, "copy destination");
    if (s == GR_OK) s = check_range(src, src_offset, bytes, "copy source");
    if (s != GR_OK || bytes == 0) return s;
    if (dst == src && dst_offset < src_offset + bytes && src_offset < dst_offset + bytes)
        return gr_fail(GR_ERR_INVALID, "vulkan: copy: overlapping ranges [%zu, +%zu) and [%zu, +%zu)",
                       src_offset, bytes, dst_offset, bytes);
    VkCommandBuffer cmd;
    if ((s = vk_cmd(c, &cmd)) != GR_OK) return s;
    vk_bind b[2] = {{src, src_offset, src_offset + bytes, 0}, {dst, dst_offset, dst_offset + bytes, 1}};
    vk_hazard(c, cmd, b, 2);
    VkBufferCopy region = {src->off + src_offset, dst->off + dst_offset, bytes};
    vkCmdCopyBuffer(cmd, src->block->buf, dst->block->buf, 1, &region);
    return GR_OK;
}

size_t vk_max_buffer_size(void *bctx)
{
    const vk_ctx *c = bctx;
    return (size_t)c->max_alloc;
}

void *vk_staging(vk_ctx *c, VkDeviceSize bytes, gr_buffer *view)
{
    vk_frame *f = &c->frames[c->cur];
    if (bytes > VK_STAGING_BYTES) return NULL;
    /* One dedicated host block per batch, created on first use, freed with the blocks. */
    if (!f->staging && block_create(c, VK_STAGING_BYTES, 1, 1, &f->staging) != GR_OK) return NULL;
    VkDeviceSize off = align_up(f->staging_used, 16);
    if (off + bytes > VK_STAGING_BYTES || !f->staging->map) return NULL;
    f->staging_used = off + bytes;
    memset(view, 0, sizeof *view);
    view->block = f->staging;
    view->off = off;
    view->size = bytes;
    view->id = (uint64_t)-1 - (uint64_t)c->cur; /* stable id per frame's staging block */
    return f->staging->map + off;
}
