/* Shaders: GLSL (embedded, or from GRAFT_VULKAN_SHADER_DIR) compiled at run time by shaderc,
 * cached on disk as SPIR-V keyed by the exact compilation input, and turned into pipelines
 * (one per shader, define set and specialization constants) through a VkPipelineCache that
 * is saved next to the SPIR-V.
 *
 * Cache file <dir>/<fnv64>.spv = "GRSPV001", u32 key length, u32 SPIR-V bytes, the key itself
 * (sources + defines + compiler version), then the SPIR-V. A hit compares the whole key, so
 * a hash collision can only cost a recompilation, never a wrong shader. */
#include <errno.h>
#include <fcntl.h>
#include <shaderc/shaderc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vk_internal.h"

#define SPV_MAGIC "GRSPV001"

/* ---- small file helpers (plugins use only the SDK; these stay local) ---- */

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1))) {
            if (fread(buf, 1, (size_t)n, f) == (size_t)n) {
                buf[n] = '\0';
                *len = (size_t)n;
            } else {
                free(buf);
                buf = NULL;
            }
        }
    }
    fclose(f);
    return buf;
}

/* Write to a temporary name and rename: concurrent graft processes never see half a file. */
static int write_atomic(const char *path, const void *a, size_t na, const void *b, size_t nb)
{
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp) return 0;
    snprintf(tmp, n, "%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    int ok = f && fwrite(a, 1, na, f) == na && (nb == 0 || fwrite(b, 1, nb, f) == nb);
    if (f && fclose(f) != 0) ok = 0;
    if (ok && rename(tmp, path) != 0) ok = 0;
    if (!ok) unlink(tmp);
    free(tmp);
    return ok;
}

static int mkdirs(const char *path)
{
    char *p = strdup(path);
    if (!p) return 0;
    int ok = 1;
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char ch = *s;
            *s = '\0';
            if (mkdir(p, 0755) != 0 && errno != EEXIST) ok = 0;
            *s = ch;
            if (!ch || !ok) break;
        }
    }
    free(p);
    return ok;
}

static uint64_t fnv1a(const void *data, size_t n, uint64_t h)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* ---- sources ---- */

static char *shader_source(vk_ctx *c, const char *name, size_t *len)
{
    if (c->shader_dir) {
        size_t n = strlen(c->shader_dir) + strlen(name) + 2;
        char *path = malloc(n);
        if (!path) return NULL;
        snprintf(path, n, "%s/%s", c->shader_dir, name);
        char *s = read_all(path, len);
        free(path);
        return s;
    }
    for (const vk_embedded_shader *e = vk_embedded_shaders; e->name; e++)
        if (strcmp(e->name, name) == 0) {
            char *s = malloc(e->len + 1);
            if (!s) return NULL;
            memcpy(s, e->text, e->len);
            s[e->len] = '\0';
            *len = e->len;
            return s;
        }
    return NULL;
}

typedef struct include_ud { vk_ctx *c; } include_ud;

static shaderc_include_result *include_resolve(void *ud, const char *requested, int type,
                                               const char *requesting, size_t depth)
{
    (void)type, (void)requesting, (void)depth;
    include_ud *u = ud;
    shaderc_include_result *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    size_t len = 0;
    char *text = shader_source(u->c, requested, &len);
    if (text) {
        r->source_name = strdup(requested);
        r->source_name_length = strlen(requested);
        r->content = text;
        r->content_length = len;
    } else {
        static const char msg[] = "include not found";
        r->source_name = strdup("");
        r->content = strdup(msg);
        r->content_length = sizeof msg - 1;
    }
    return r;
}

static void include_release(void *ud, shaderc_include_result *r)
{
    (void)ud;
    if (!r) return;
    free((void *)r->source_name);
    free((void *)r->content);
    free(r);
}

/* The full compilation input: the shader, every .glsl it can include, the defines and the
 * compiler's identity. */
static char *cache_key(vk_ctx *c, const char *name, const char *src, const char *defines, size_t *len)
{
    unsigned spv_ver = 0, spv_rev = 0;
    shaderc_get_spv_version(&spv_ver, &spv_rev);
    size_t cap = strlen(src) + strlen(defines) + strlen(name) + 256, n = 0;
    for (const vk_embedded_shader *e = vk_embedded_shaders; e->name; e++)
        if (strstr(e->name, ".glsl")) cap += e->len + strlen(e->name) + 8;
    char *k = malloc(cap);
    if (!k) return NULL;
    n += (size_t)snprintf(k + n, cap - n, "shaderc %s spv %u.%u vulkan1.1 O\n%s\n%s\n", GRAFT_VK_SHADERC_VERSION,
                          spv_ver, spv_rev, name, defines);
    memcpy(k + n, src, strlen(src));
    n += strlen(src);
    for (const vk_embedded_shader *e = vk_embedded_shaders; e->name; e++) {
        if (!strstr(e->name, ".glsl")) continue;
        size_t l = 0;
        char *inc = shader_source(c, e->name, &l);
        if (!inc) continue;
        n += (size_t)snprintf(k + n, cap - n, "\n--%s\n", e->name);
        if (n + l < cap) {
            memcpy(k + n, inc, l);
            n += l;
        }
        free(inc);
    }
    *len = n;
    return k;
}

static gr_status compile(vk_ctx *c, const char *name, const char *src, const char *defines,
                         uint32_t **spv, size_t *spv_bytes)
{
    if (!c->compiler && !(c->compiler = shaderc_compiler_initialize()))
        return gr_fail(GR_ERR_BACKEND, "vulkan: cannot initialise shaderc");
    shaderc_compile_options_t o = shaderc_compile_options_initialize();
    if (!o) return gr_fail(GR_ERR_NOMEM, "vulkan: shaderc options");
    shaderc_compile_options_set_target_env(o, shaderc_target_env_vulkan, shaderc_env_version_vulkan_1_1);
    shaderc_compile_options_set_optimization_level(o, shaderc_optimization_level_performance);
    include_ud ud = {c};
    shaderc_compile_options_set_include_callbacks(o, include_resolve, include_release, &ud);
    /* defines: "A=1 B=x C" */
    char *d = strdup(defines);
    if (!d) {
        shaderc_compile_options_release(o);
        return gr_fail(GR_ERR_NOMEM, "vulkan: out of memory");
    }
    for (char *save = NULL, *tok = strtok_r(d, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(tok, '=');
        if (eq) shaderc_compile_options_add_macro_definition(o, tok, (size_t)(eq - tok), eq + 1, strlen(eq + 1));
        else shaderc_compile_options_add_macro_definition(o, tok, strlen(tok), "1", 1);
    }
    free(d);
    shaderc_compilation_result_t r = shaderc_compile_into_spv(c->compiler, src, strlen(src),
                                                              shaderc_compute_shader, name, "main", o);
    shaderc_compile_options_release(o);
    if (!r) return gr_fail(GR_ERR_BACKEND, "vulkan: %s: shaderc failed", name);
    if (shaderc_result_get_compilation_status(r) != shaderc_compilation_status_success) {
        gr_status s = gr_fail(GR_ERR_BACKEND, "vulkan: %s [%s]: %s", name, defines,
                              shaderc_result_get_error_message(r));
        shaderc_result_release(r);
        return s;
    }
    *spv_bytes = shaderc_result_get_length(r);
    *spv = malloc(*spv_bytes);
    if (*spv) memcpy(*spv, shaderc_result_get_bytes(r), *spv_bytes);
    shaderc_result_release(r);
    if (!*spv) return gr_fail(GR_ERR_NOMEM, "vulkan: out of memory");
    c->shaders_compiled++;
    if (c->verbose) fprintf(stderr, "graft: vulkan: compiled %s [%s]\n", name, defines);
    return GR_OK;
}

/* SPIR-V for (name, defines): from the disk cache when the key matches exactly, else compiled
 * (and stored). */
static gr_status get_spirv(vk_ctx *c, const char *name, const char *defines, uint32_t **spv, size_t *bytes)
{
    size_t srclen = 0;
    char *src = shader_source(c, name, &srclen);
    if (!src)
        return gr_fail(GR_ERR_NOT_FOUND, "vulkan: shader %s not found%s%s", name,
                       c->shader_dir ? " in " : "", c->shader_dir ? c->shader_dir : "");
    size_t klen = 0;
    char *key = cache_key(c, name, src, defines, &klen);
    if (!key) {
        free(src);
        return gr_fail(GR_ERR_NOMEM, "vulkan: out of memory");
    }
    char path[4096] = "";
    if (c->cache_dir) {
        snprintf(path, sizeof path, "%s/%016llx.spv", c->cache_dir,
                 (unsigned long long)fnv1a(key, klen, 14695981039346656037ull));
        size_t n = 0;
        char *f = read_all(path, &n);
        if (f && n >= 16 && memcmp(f, SPV_MAGIC, 8) == 0) {
            uint32_t kl, sl;
            memcpy(&kl, f + 8, 4);
            memcpy(&sl, f + 12, 4);
            uint32_t magic = 0;
            if (sl >= 4 && sl % 4 == 0 && (size_t)kl + sl + 16 == n) memcpy(&magic, f + 16 + kl, 4);
            if (kl == klen && memcmp(f + 16, key, klen) == 0 && magic == 0x07230203u &&
                (*spv = malloc(sl))) {
                memcpy(*spv, f + 16 + kl, sl);
                *bytes = sl;
                c->shaders_cached++;
                free(f);
                free(key);
                free(src);
                return GR_OK;
            }
        }
        free(f);
    }
    gr_status s = compile(c, name, src, defines, spv, bytes);
    free(src);
    if (s == GR_OK && path[0]) {
        size_t hn = 16 + klen;
        char *head = malloc(hn);
        if (head) {
            uint32_t kl = (uint32_t)klen, sl = (uint32_t)*bytes;
            memcpy(head, SPV_MAGIC, 8);
            memcpy(head + 8, &kl, 4);
            memcpy(head + 12, &sl, 4);
            memcpy(head + 16, key, klen);
            /* A cache that cannot be written only costs a recompilation next time. */
            if (!write_atomic(path, head, hn, *spv, *bytes) && c->verbose)
                fprintf(stderr, "graft: vulkan: cannot write the shader cache %s\n", path);
            free(head);
        }
    }
    free(key);
    return s;
}

/* ---- pipeline cache and layouts ---- */

static void pcache_path(const vk_ctx *c, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/pipelines-%08x-%08x.bin", c->cache_dir, c->props.vendorID, c->props.deviceID);
}

gr_status vk_pipelines_init(vk_ctx *c)
{
    const char *sd = getenv("GRAFT_VULKAN_SHADER_DIR");
    if (sd && sd[0] && !(c->shader_dir = strdup(sd))) return gr_fail(GR_ERR_NOMEM, "vulkan: out of memory");

    for (int n = 1; n <= VK_MAX_BINDINGS; n++) {
        VkDescriptorSetLayoutBinding b[VK_MAX_BINDINGS];
        for (int i = 0; i < n; i++)
            b[i] = (VkDescriptorSetLayoutBinding){(uint32_t)i, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1,
                                                  VK_SHADER_STAGE_COMPUTE_BIT, NULL};
        VkDescriptorSetLayoutCreateInfo li = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                              .bindingCount = (uint32_t)n, .pBindings = b};
        VkResult r = vkCreateDescriptorSetLayout(c->dev, &li, NULL, &c->dsl[n]);
        if (r != VK_SUCCESS) return gr_fail(GR_ERR_BACKEND, "vulkan: descriptor set layout: %s", vk_result_str(r));
        VkPushConstantRange pr = {VK_SHADER_STAGE_COMPUTE_BIT, 0, VK_PUSH_WORDS * 4};
        VkPipelineLayoutCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                         .setLayoutCount = 1, .pSetLayouts = &c->dsl[n],
                                         .pushConstantRangeCount = 1, .pPushConstantRanges = &pr};
        r = vkCreatePipelineLayout(c->dev, &pi, NULL, &c->layout[n]);
        if (r != VK_SUCCESS) return gr_fail(GR_ERR_BACKEND, "vulkan: pipeline layout: %s", vk_result_str(r));
    }

    /* Load the pipeline cache only when its header names this exact device and driver. */
    void *data = NULL;
    size_t n = 0;
    if (c->cache_dir) {
        char path[4096];
        pcache_path(c, path, sizeof path);
        data = read_all(path, &n);
        uint32_t h[4];
        if (data && n >= 16 + VK_UUID_SIZE) {
            memcpy(h, data, 16);
            if (h[1] != VK_PIPELINE_CACHE_HEADER_VERSION_ONE || h[2] != c->props.vendorID ||
                h[3] != c->props.deviceID ||
                memcmp((char *)data + 16, c->props.pipelineCacheUUID, VK_UUID_SIZE) != 0)
                n = 0;
        } else {
            n = 0;
        }
    }
    VkPipelineCacheCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO,
                                    .initialDataSize = n, .pInitialData = n ? data : NULL};
    VkResult r = vkCreatePipelineCache(c->dev, &ci, NULL, &c->pcache);
    free(data);
    if (r != VK_SUCCESS) return gr_fail(GR_ERR_BACKEND, "vulkan: pipeline cache: %s", vk_result_str(r));
    return GR_OK;
}

void vk_pipelines_destroy(vk_ctx *c)
{
    if (c->pcache && c->cache_dir && c->shaders_compiled + c->npipes > 0) {
        size_t n = 0;
        if (vkGetPipelineCacheData(c->dev, c->pcache, &n, NULL) == VK_SUCCESS && n > 0) {
            void *d = malloc(n);
            char path[4096];
            pcache_path(c, path, sizeof path);
            if (d && vkGetPipelineCacheData(c->dev, c->pcache, &n, d) == VK_SUCCESS)
                write_atomic(path, d, n, NULL, 0);
            free(d);
        }
    }
    for (int i = 0; i < c->npipes; i++) {
        vkDestroyPipeline(c->dev, c->pipes[i]->pipe, NULL);
        free(c->pipes[i]->key);
        free(c->pipes[i]);
    }
    free(c->pipes);
    if (c->pcache) vkDestroyPipelineCache(c->dev, c->pcache, NULL);
    for (int i = 0; i < c->nlayouts; i++) {
        vkDestroyPipelineLayout(c->dev, c->layouts[i].layout, NULL);
        vkDestroyDescriptorSetLayout(c->dev, c->layouts[i].dsl, NULL);
    }
    for (int n = 1; n <= VK_MAX_BINDINGS; n++) {
        if (c->layout[n]) vkDestroyPipelineLayout(c->dev, c->layout[n], NULL);
        if (c->dsl[n]) vkDestroyDescriptorSetLayout(c->dev, c->dsl[n], NULL);
    }
    if (c->compiler) shaderc_compiler_release(c->compiler);
    free(c->shader_dir);
    free(c->cache_dir);
}

static gr_status layout_get(vk_ctx *c, int nbind, uint32_t texel_mask, VkDescriptorSetLayout *dsl,
                            VkPipelineLayout *layout)
{
    if (!texel_mask) {
        *dsl = c->dsl[nbind];
        *layout = c->layout[nbind];
        return GR_OK;
    }
    for (int i = 0; i < c->nlayouts; i++)
        if (c->layouts[i].nbind == nbind && c->layouts[i].texel_mask == texel_mask) {
            *dsl = c->layouts[i].dsl;
            *layout = c->layouts[i].layout;
            return GR_OK;
        }
    if (c->nlayouts == VK_MAX_LAYOUTS) return gr_fail(GR_ERR_INVALID, "vulkan: too many descriptor layouts");
    vk_layout *l = &c->layouts[c->nlayouts];
    VkDescriptorSetLayoutBinding b[VK_MAX_BINDINGS];
    for (int i = 0; i < nbind; i++)
        b[i] = (VkDescriptorSetLayoutBinding){(uint32_t)i, (texel_mask >> i) & 1 ? VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER
                                                                                 : VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                              1, VK_SHADER_STAGE_COMPUTE_BIT, NULL};
    VkDescriptorSetLayoutCreateInfo li = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                          .bindingCount = (uint32_t)nbind, .pBindings = b};
    VkResult r = vkCreateDescriptorSetLayout(c->dev, &li, NULL, &l->dsl);
    if (r != VK_SUCCESS) return gr_fail(GR_ERR_BACKEND, "vulkan: descriptor set layout: %s", vk_result_str(r));
    VkPushConstantRange pr = {VK_SHADER_STAGE_COMPUTE_BIT, 0, VK_PUSH_WORDS * 4};
    VkPipelineLayoutCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                     .setLayoutCount = 1, .pSetLayouts = &l->dsl,
                                     .pushConstantRangeCount = 1, .pPushConstantRanges = &pr};
    r = vkCreatePipelineLayout(c->dev, &pi, NULL, &l->layout);
    if (r != VK_SUCCESS) {
        vkDestroyDescriptorSetLayout(c->dev, l->dsl, NULL);
        return gr_fail(GR_ERR_BACKEND, "vulkan: pipeline layout: %s", vk_result_str(r));
    }
    l->nbind = nbind;
    l->texel_mask = texel_mask;
    c->nlayouts++;
    *dsl = l->dsl;
    *layout = l->layout;
    return GR_OK;
}

gr_status vk_pipeline_get(vk_ctx *c, const char *name, const char *defines, const uint32_t *spec,
                          int nspec, int nbind, vk_pipeline **out)
{
    return vk_pipeline_get_texel(c, name, defines, spec, nspec, nbind, 0, out);
}

gr_status vk_pipeline_get_texel(vk_ctx *c, const char *name, const char *defines, const uint32_t *spec,
                                int nspec, int nbind, uint32_t texel_mask, vk_pipeline **out)
{
    char key[512];
    int kn = snprintf(key, sizeof key, "%s|%s|%d|%x", name, defines, nbind, texel_mask);
    for (int i = 0; i < nspec && kn < (int)sizeof key; i++)
        kn += snprintf(key + kn, sizeof key - (size_t)kn, "|%u", spec[i]);
    for (int i = 0; i < c->npipes; i++)
        if (strcmp(c->pipes[i]->key, key) == 0) {
            *out = c->pipes[i];
            return GR_OK;
        }
    if (nbind < 1 || nbind > VK_MAX_BINDINGS || nspec > 8 || (texel_mask >> nbind))
        return gr_fail(GR_ERR_INVALID, "vulkan: %s: bad pipeline request", name);
    VkDescriptorSetLayout dsl = VK_NULL_HANDLE;
    VkPipelineLayout layout = VK_NULL_HANDLE;
    gr_status ls = layout_get(c, nbind, texel_mask, &dsl, &layout);
    if (ls != GR_OK) return ls;

    uint32_t *spv = NULL;
    size_t bytes = 0;
    gr_status s = get_spirv(c, name, defines, &spv, &bytes);
    if (s != GR_OK) return s;
    VkShaderModuleCreateInfo mi = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                   .codeSize = bytes, .pCode = spv};
    VkShaderModule mod;
    VkResult r = vkCreateShaderModule(c->dev, &mi, NULL, &mod);
    free(spv);
    if (r != VK_SUCCESS) return gr_fail(GR_ERR_BACKEND, "vulkan: %s: shader module: %s", name, vk_result_str(r));
    VkSpecializationMapEntry me[8];
    for (int i = 0; i < nspec; i++) me[i] = (VkSpecializationMapEntry){(uint32_t)i, (uint32_t)i * 4, 4};
    VkSpecializationInfo si = {(uint32_t)nspec, me, (size_t)nspec * 4, spec};
    VkComputePipelineCreateInfo pci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                  .stage = VK_SHADER_STAGE_COMPUTE_BIT, .module = mod, .pName = "main",
                  .pSpecializationInfo = nspec ? &si : NULL},
        .layout = layout};
    vk_pipeline *p = calloc(1, sizeof *p);
    if (!p) {
        vkDestroyShaderModule(c->dev, mod, NULL);
        return gr_fail(GR_ERR_NOMEM, "vulkan: out of memory");
    }
    r = vkCreateComputePipelines(c->dev, c->pcache, 1, &pci, NULL, &p->pipe);
    vkDestroyShaderModule(c->dev, mod, NULL);
    if (r != VK_SUCCESS) {
        free(p);
        return gr_fail(GR_ERR_BACKEND, "vulkan: %s: pipeline: %s", name, vk_result_str(r));
    }
    p->key = strdup(key);
    p->nbind = nbind;
    p->texel_mask = texel_mask;
    p->layout = layout;
    p->dsl = dsl;
    p->local_size = nspec ? spec[0] : 1;
    if (c->npipes == c->cappipes) {
        int cap = c->cappipes ? c->cappipes * 2 : 32;
        vk_pipeline **np = realloc(c->pipes, (size_t)cap * sizeof *np);
        if (!np || !p->key) {
            vkDestroyPipeline(c->dev, p->pipe, NULL);
            free(p->key);
            free(p);
            return gr_fail(GR_ERR_NOMEM, "vulkan: out of memory");
        }
        c->pipes = np;
        c->cappipes = cap;
    }
    c->pipes[c->npipes++] = p;
    *out = p;
    return GR_OK;
}

/* The default cache directory: $XDG_CACHE_HOME/graft/vulkan or ~/.cache/graft/vulkan. */
gr_status vk_cache_dir_init(vk_ctx *c, const char *want);
gr_status vk_cache_dir_init(vk_ctx *c, const char *want)
{
    char buf[4096];
    if (want && want[0]) {
        snprintf(buf, sizeof buf, "%s", want);
    } else {
        const char *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
        if (x && x[0]) snprintf(buf, sizeof buf, "%s/graft/vulkan", x);
        else if (h && h[0]) snprintf(buf, sizeof buf, "%s/.cache/graft/vulkan", h);
        else return GR_OK; /* no cache: every start compiles */
    }
    if (!mkdirs(buf)) {
        if (want && want[0]) return gr_fail(GR_ERR_IO, "%s: cannot create the shader cache directory", buf);
        return GR_OK;
    }
    if (!(c->cache_dir = strdup(buf))) return gr_fail(GR_ERR_NOMEM, "vulkan: out of memory");
    return GR_OK;
}
