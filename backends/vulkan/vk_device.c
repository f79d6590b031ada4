/* Instance and device selection, feature probes, describe(). */
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vk_internal.h"

const char *vk_result_str(VkResult r)
{
    switch (r) {
    case VK_SUCCESS: return "VK_SUCCESS";
    case VK_NOT_READY: return "VK_NOT_READY";
    case VK_TIMEOUT: return "VK_TIMEOUT";
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_MEMORY_MAP_FAILED: return "VK_ERROR_MEMORY_MAP_FAILED";
    case VK_ERROR_LAYER_NOT_PRESENT: return "VK_ERROR_LAYER_NOT_PRESENT";
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT: return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_ERROR_TOO_MANY_OBJECTS: return "VK_ERROR_TOO_MANY_OBJECTS";
    case VK_ERROR_FORMAT_NOT_SUPPORTED: return "VK_ERROR_FORMAT_NOT_SUPPORTED";
    case VK_ERROR_FRAGMENTED_POOL: return "VK_ERROR_FRAGMENTED_POOL";
    case VK_ERROR_OUT_OF_POOL_MEMORY: return "VK_ERROR_OUT_OF_POOL_MEMORY";
    default: return "VkResult error";
    }
}

static const char *device_type_name(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated GPU";
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete GPU";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual GPU";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "CPU";
    default: return "other";
    }
}

/* Preference when no device is named: discrete > integrated > virtual > CPU > other. */
static int device_rank(VkPhysicalDeviceType t)
{
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 4;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 3;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 1;
    default: return 0;
    }
}

static int compute_queue_family(VkPhysicalDevice pd, uint32_t *fam)
{
    uint32_t n = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, NULL);
    VkQueueFamilyProperties *q = calloc(n ? n : 1, sizeof *q);
    if (!q) return 0;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, q);
    int found = 0;
    /* A compute-only family first (async compute on GPUs), else any with compute. */
    for (uint32_t i = 0; i < n && !found; i++)
        if ((q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) && !(q[i].queueFlags & VK_QUEUE_GRAPHICS_BIT)) {
            *fam = i;
            found = 1;
        }
    for (uint32_t i = 0; i < n && !found; i++)
        if (q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) {
            *fam = i;
            found = 1;
        }
    free(q);
    return found;
}

static int has_extension(VkPhysicalDevice pd, const char *name)
{
    uint32_t n = 0;
    if (vkEnumerateDeviceExtensionProperties(pd, NULL, &n, NULL) != VK_SUCCESS) return 0;
    VkExtensionProperties *e = calloc(n ? n : 1, sizeof *e);
    if (!e) return 0;
    int found = 0;
    if (vkEnumerateDeviceExtensionProperties(pd, NULL, &n, e) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++) found = strcmp(e[i].extensionName, name) == 0;
    free(e);
    return found;
}

/* Picks the device: "" = best ranked, a number = that index, else a name substring. */
static gr_status select_device(vk_ctx *c, const char *want)
{
    uint32_t n = 0;
    VkResult r = vkEnumeratePhysicalDevices(c->inst, &n, NULL);
    if (r != VK_SUCCESS || n == 0)
        return gr_fail(GR_ERR_UNSUPPORTED, "vulkan: no Vulkan device found (%s); install a driver "
                       "such as mesa-vulkan-drivers (lavapipe)", r != VK_SUCCESS ? vk_result_str(r) :
                       "0 physical devices");
    VkPhysicalDevice *pds = calloc(n, sizeof *pds);
    if (!pds) return gr_fail(GR_ERR_NOMEM, "vulkan: out of memory");
    vkEnumeratePhysicalDevices(c->inst, &n, pds);
    int pick = -1, best = -1;
    char *endp = NULL;
    long idx = (want && want[0]) ? strtol(want, &endp, 10) : -1;
    int by_index = want && want[0] && endp && *endp == '\0';
    size_t used = 0;
    for (uint32_t i = 0; i < n; i++) {
        VkPhysicalDeviceProperties p;
        vkGetPhysicalDeviceProperties(pds[i], &p);
        uint32_t fam;
        int usable = compute_queue_family(pds[i], &fam) && p.apiVersion >= VK_API_VERSION_1_1;
        if (used < sizeof c->devices_desc)
            used += (size_t)snprintf(c->devices_desc + used, sizeof c->devices_desc - used,
                                     "%sdevice %u: %s (%s, Vulkan %u.%u)%s", i ? "\n" : "", i,
                                     p.deviceName, device_type_name(p.deviceType),
                                     VK_API_VERSION_MAJOR(p.apiVersion),
                                     VK_API_VERSION_MINOR(p.apiVersion), usable ? "" : " [unusable]");
        if (!usable) continue;
        if (by_index) {
            if (idx == (long)i) pick = (int)i;
        } else if (want && want[0]) {
            if (pick < 0 && strstr(p.deviceName, want)) pick = (int)i;
        } else if (device_rank(p.deviceType) > best) {
            best = device_rank(p.deviceType);
            pick = (int)i;
        }
    }
    if (pick < 0) {
        free(pds);
        if (want && want[0])
            return gr_fail(GR_ERR_NOT_FOUND, "vulkan: device '%s': no usable device matches (%u found: "
                           "%s)", want, n, c->devices_desc);
        return gr_fail(GR_ERR_UNSUPPORTED, "vulkan: no device with a compute queue and Vulkan 1.1 "
                       "(%s)", c->devices_desc);
    }
    c->pdev = pds[pick];
    c->device_index = pick;
    free(pds);
    return GR_OK;
}

/* The Vulkan loader unloads the driver (ICD) when the last instance goes away. Drivers keep
 * process-wide caches (lavapipe does) that then look leaked and cost a reload on the next
 * backend; so the objects the first instance brings in are pinned (RTLD_NODELETE). */
typedef struct loaded_set { char **names; int n, cap; } loaded_set;

static int collect(struct dl_phdr_info *info, size_t size, void *ud)
{
    (void)size;
    loaded_set *s = ud;
    if (!info->dlpi_name || !info->dlpi_name[0]) return 0;
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 64;
        char **nn = realloc(s->names, (size_t)cap * sizeof *nn);
        if (!nn) return 1;
        s->names = nn;
        s->cap = cap;
    }
    if ((s->names[s->n] = strdup(info->dlpi_name))) s->n++;
    return 0;
}

static void loaded_free(loaded_set *s)
{
    for (int i = 0; i < s->n; i++) free(s->names[i]);
    free(s->names);
}

static void pin_new_objects(const loaded_set *before)
{
    loaded_set after = {0};
    dl_iterate_phdr(collect, &after);
    for (int i = 0; i < after.n; i++) {
        int seen = 0;
        for (int j = 0; j < before->n && !seen; j++) seen = strcmp(after.names[i], before->names[j]) == 0;
        if (!seen) dlopen(after.names[i], RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
    }
    loaded_free(&after);
}

gr_status vk_device_create(const gr_backend_options *opt, vk_ctx **out)
{
    vk_ctx *c = calloc(1, sizeof *c);
    if (!c) return gr_fail(GR_ERR_NOMEM, "vulkan: out of memory");
    c->verbose = opt ? opt->verbose : 0;
    c->debug_check = opt ? opt->debug_check : 0;

    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .pApplicationName = "graft",
                             .pEngineName = "graft", .apiVersion = VK_API_VERSION_1_2};
    VkInstanceCreateInfo ici = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app};
    static int pinned;
    loaded_set before = {0};
    if (!pinned) dl_iterate_phdr(collect, &before);
    VkResult r = vkCreateInstance(&ici, NULL, &c->inst);
    if (!pinned) {
        /* Enumerating devices loads the drivers. */
        uint32_t ndev = 0;
        if (r == VK_SUCCESS) vkEnumeratePhysicalDevices(c->inst, &ndev, NULL);
        pin_new_objects(&before);
        loaded_free(&before);
        /* This plugin too: the statically linked shaderc/glslang keep process-wide state that
         * must not be unmapped under them (a later dlclose would strand it). */
        Dl_info self;
        if (dladdr((void *)vk_device_create, &self) && self.dli_fname)
            dlopen(self.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
        pinned = 1;
    }
    if (r != VK_SUCCESS) {
        free(c);
        return gr_fail(GR_ERR_UNSUPPORTED, "vulkan: cannot create a Vulkan instance (%s): no Vulkan "
                       "driver installed?", vk_result_str(r));
    }
    gr_status s = select_device(c, opt ? opt->device : NULL);
    if (s != GR_OK) {
        vkDestroyInstance(c->inst, NULL);
        free(c);
        return s;
    }
    vkGetPhysicalDeviceProperties(c->pdev, &c->props);
    vkGetPhysicalDeviceMemoryProperties(c->pdev, &c->memprops);
    compute_queue_family(c->pdev, &c->qfam);

    /* Feature probes: enable what the shaders can use, remember the rest for describe(). */
    VkPhysicalDevice16BitStorageFeatures f16s = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
    VkPhysicalDevice8BitStorageFeatures f8s = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES,
                                               .pNext = &f16s};
    VkPhysicalDeviceShaderFloat16Int8Features f16a = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES, .pNext = &f8s};
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f16a};
    vkGetPhysicalDeviceFeatures2(c->pdev, &f2);
    VkPhysicalDeviceSubgroupProperties sg = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &sg};
    vkGetPhysicalDeviceProperties2(c->pdev, &p2);
    c->feat.fp16_storage = f16s.storageBuffer16BitAccess;
    c->feat.int8_storage = f8s.storageBuffer8BitAccess;
    c->feat.fp16_arith = f16a.shaderFloat16;
    c->feat.fp64 = f2.features.shaderFloat64;
    c->feat.int64 = f2.features.shaderInt64;
    c->feat.subgroup_size = (int)sg.subgroupSize;
    c->feat.coopmat_ext = has_extension(c->pdev, "VK_KHR_cooperative_matrix");
    c->feat.subgroup_shuffle = (sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                               (sg.supportedOperations & VK_SUBGROUP_FEATURE_SHUFFLE_BIT);
    VkFormatProperties fp;
    vkGetPhysicalDeviceFormatProperties(c->pdev, VK_FORMAT_R32G32B32A32_SFLOAT, &fp);
    c->feat.texel_rgba32f = (fp.bufferFeatures & VK_FORMAT_FEATURE_UNIFORM_TEXEL_BUFFER_BIT) != 0;
    c->feat.cpu = c->props.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU;

    /* Enable only the features the shaders use (16/8-bit storage, float64 accumulation). */
    VkPhysicalDevice16BitStorageFeatures en16 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES,
                                                 .storageBuffer16BitAccess = f16s.storageBuffer16BitAccess};
    VkPhysicalDevice8BitStorageFeatures en8 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES,
                                               .pNext = &en16,
                                               .storageBuffer8BitAccess = f8s.storageBuffer8BitAccess};
    VkPhysicalDeviceFeatures2 en = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &en8};
    en.features.shaderFloat64 = f2.features.shaderFloat64;
    en.features.shaderInt64 = f2.features.shaderInt64;
    float prio = 1.0f;
    VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                   .queueFamilyIndex = c->qfam, .queueCount = 1, .pQueuePriorities = &prio};
    const char *exts[1];
    uint32_t nexts = 0;
    /* 16/8-bit storage are core in 1.1/1.2; on 1.1 devices the 8-bit one is an extension. */
    if (c->feat.int8_storage && c->props.apiVersion < VK_API_VERSION_1_2 &&
        has_extension(c->pdev, "VK_KHR_8bit_storage"))
        exts[nexts++] = "VK_KHR_8bit_storage";
    VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .pNext = &en,
                              .queueCreateInfoCount = 1, .pQueueCreateInfos = &qci,
                              .enabledExtensionCount = nexts, .ppEnabledExtensionNames = exts};
    r = vkCreateDevice(c->pdev, &dci, NULL, &c->dev);
    if (r != VK_SUCCESS) {
        vkDestroyInstance(c->inst, NULL);
        free(c);
        return gr_fail(GR_ERR_BACKEND, "vulkan: cannot create the device (%s)", vk_result_str(r));
    }
    vkGetDeviceQueue(c->dev, c->qfam, 0, &c->queue);

    VkDeviceSize range = c->props.limits.maxStorageBufferRange;
    /* Shaders index windows with 32-bit element indices: keep a window below 2 GiB. */
    if (range > ((VkDeviceSize)1 << 31)) range = (VkDeviceSize)1 << 31;
    /* GRAFT_VULKAN_MAX_RANGE lowers the window (tests exercise the splitting paths with it). */
    const char *env = getenv("GRAFT_VULKAN_MAX_RANGE");
    if (env && env[0]) {
        unsigned long long v = strtoull(env, NULL, 10);
        if (v >= 1024 && v < range) range = v;
    }
    c->max_range = range;
    const char *defer = getenv("GRAFT_VULKAN_DEFER_INDEX_CHECKS");
    c->defer_index_checks = defer && defer[0] && strcmp(defer, "0") != 0;
    *out = c;
    return GR_OK;
}

void vk_device_destroy(vk_ctx *c)
{
    if (c->dev) vkDestroyDevice(c->dev, NULL);
    if (c->inst) vkDestroyInstance(c->inst, NULL);
    free(c);
}

gr_status vk_describe(void *bctx, char *buf, size_t cap)
{
    vk_ctx *c = bctx;
    const VkPhysicalDeviceLimits *L = &c->props.limits;
    snprintf(buf, cap,
             "%s\n"
             "using device %d: %s, driver %u.%u.%u, Vulkan %u.%u.%u\n"
             "limits: maxStorageBufferRange %u MiB (window %llu MiB), maxMemoryAllocation %llu MiB, "
             "push constants %u B, shared memory %u KiB, workgroup <= %u invocations\n"
             "features: fp16 storage %s, fp16 arithmetic %s, int8 storage %s, fp64 %s (sum_squares "
             "accumulates in %s), int64 %s, subgroup size %d, cooperative matrix %s\n"
             "matmul: subgroup kernel %llu calls (%s), tiled kernel %llu calls\n"
             "memory: device-local %s host-visible; %llu MiB blocks\n"
             "shaders: %d compiled, %d from the SPIR-V cache (%s)%s\n"
             "debug_check: %s",
             c->devices_desc, c->device_index, c->props.deviceName,
             VK_API_VERSION_MAJOR(c->props.driverVersion), VK_API_VERSION_MINOR(c->props.driverVersion),
             VK_API_VERSION_PATCH(c->props.driverVersion), VK_API_VERSION_MAJOR(c->props.apiVersion),
             VK_API_VERSION_MINOR(c->props.apiVersion), VK_API_VERSION_PATCH(c->props.apiVersion),
             L->maxStorageBufferRange >> 20, (unsigned long long)(c->max_range >> 20),
             (unsigned long long)(c->max_alloc >> 20), L->maxPushConstantsSize,
             L->maxComputeSharedMemorySize >> 10, L->maxComputeWorkGroupInvocations,
             c->feat.fp16_storage ? "yes" : "no", c->feat.fp16_arith ? "yes" : "no",
             c->feat.int8_storage ? "yes" : "no", c->feat.fp64 ? "yes" : "no",
             c->feat.fp64 ? "double" : "float", c->feat.int64 ? "yes" : "no", c->feat.subgroup_size,
             c->feat.coopmat_ext ? "advertised (not used: the shader compiler lacks it)" : "no",
             (unsigned long long)c->mm_subgroup,
             c->feat.cpu && c->feat.subgroup_shuffle && c->feat.texel_rgba32f ? "CPU device: texel-buffer operands"
                                                                            : "not used on this device",
             (unsigned long long)c->mm_tiled, c->dev_is_host ? "is" : "is not", (unsigned long long)(c->block_size >> 20),
             c->shaders_compiled, c->shaders_cached, c->cache_dir ? c->cache_dir : "no cache",
             c->shader_dir ? ", sources from GRAFT_VULKAN_SHADER_DIR" : "",
             c->debug_check ? "on (every op recomputed on the host)" : "off");
    return GR_OK;
}
