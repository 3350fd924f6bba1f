/* Row-wise top-k of a float32 matrix: the TopK SAE's selection step on CPU.
 *
 * torch.topk copies every row into a vector of (value, index) pairs before a partial sort; at the bundled model's
 * width (4096 latents) that costs as much as the encoder matmul itself (python -m switch_sae_mini bench). Here,
 * per row and without moving data:
 *   1. the maximum of each of n / 16 groups of 16 values. The k largest group maxima are k distinct values of the row, so
 *      the k-th largest of them is a lower bound of the row's k-th largest value, and so is T, that value
 *      rounded down to its top 16 bits;
 *   2. only groups whose maximum reaches T can hold one of the k largest values: their values >= T are gathered
 *      (typically a little more than k of them);
 *   3. the exact k-th largest of those, and the values above it plus enough equal to it make the output.
 * Each k-th-largest search is a bitwise binary search over the order-preserving integer key of the floats: 32
 * counting passes that the compiler vectorises, with no data-dependent branches.
 *
 * Output is unsorted, like torch.topk(sorted=False); which of several equal values is kept is unspecified, as in
 * torch. A row that holds a NaN is reported (the return value counts such rows): the caller then uses
 * torch.topk, which ranks NaN first.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define GROUP 16

/* Order-preserving map of float32 bits to uint32 (negative values flipped, positive ones offset). */
static inline uint32_t key_of(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u ^ ((uint32_t)((int32_t)u >> 31) | 0x80000000u);
}

/* The k-th largest key among v[0:m) (1 <= k <= m), known to its top `bits` bits: the largest K whose lower bits
 * are zero with at least k keys >= K. bits = 32 gives the exact k-th largest key; fewer give a lower bound. */
static uint32_t kth_largest_key(const float *v, int64_t m, int64_t k, int bits) {
    uint32_t prefix = 0;
    for (int bit = 31; bit >= 32 - bits; bit--) {
        uint32_t candidate = prefix | (1u << bit);
        int64_t count = 0;
        for (int64_t i = 0; i < m; i++) count += key_of(v[i]) >= candidate;
        if (count >= k) prefix = candidate;
    }
    return prefix;
}

/* Top-k of each row of x + bias. x: rows x n with row stride ld; bias: n values or NULL (the TopK encoder's b_enc,
 * added here so the matmul need not make a pass to add it); out_v / out_i: rows x k, contiguous;
 * 1 <= k <= n / GROUP (the caller checks). Returns the number of rows with a NaN, or -1 when out of memory. */
int64_t ssm_topk_rows_f32(const float *x, const float *bias, int64_t rows, int64_t n, int64_t ld, int64_t k,
                          float *out_v, int64_t *out_i) {
    int64_t groups = n / GROUP;
    float *gmax = malloc(groups * sizeof(float));
    float *bv = malloc(n * sizeof(float));
    int64_t *bi = malloc(n * sizeof(int64_t));
    if (gmax == NULL || bv == NULL || bi == NULL) {
        free(gmax); free(bv); free(bi);
        return -1;
    }
    int64_t nan_rows = 0;
#define VALUE(j) (bias != NULL ? row[j] + bias[j] : row[j])
    for (int64_t r = 0; r < rows; r++) {
        const float *row = x + r * ld;
        int has_nan = 0;
        /* 1. group maxima. Group g is {g, g + groups, g + 2 * groups, ...}: a strided partition, so the maxima of
         * all groups are 16 element-wise maxima of contiguous slices, which vectorise */
        int nan = 0;
        for (int64_t g = 0; g < groups; g++) {
            gmax[g] = VALUE(g);
            nan |= gmax[g] != gmax[g];
        }
        for (int t = 1; t < GROUP; t++) {
            for (int64_t g = 0; g < groups; g++) {
                float v = VALUE(t * groups + g);
                gmax[g] = v > gmax[g] ? v : gmax[g];
                nan |= v != v;
            }
        }
        has_nan = nan;
        for (int64_t j = groups * GROUP; j < n; j++) has_nan |= VALUE(j) != VALUE(j);
        if (has_nan) {  /* NaN has no place in the key order; the caller redoes this call with torch.topk */
            nan_rows++;
            continue;
        }
        /* 16 bits (sign, exponent, 7 mantissa bits) make T a lower bound within 1/128 of the exact one: as
         * few candidates as the exact bound at half its cost (measured: 12 bits admit too many, 24 gain nothing) */
        uint32_t bound = kth_largest_key(gmax, groups, k, 16);
        int64_t count = 0;
        for (int64_t g = 0; g < groups; g++) {  /* 2. candidates: values >= T in groups that reach T */
            if (key_of(gmax[g]) < bound) continue;
            for (int t = 0; t < GROUP; t++) {  /* branchless: write always, keep if at or above T */
                int64_t j = g + t * groups;
                bv[count] = VALUE(j);
                bi[count] = j;
                count += key_of(bv[count]) >= bound;
            }
        }
        for (int64_t j = groups * GROUP; j < n; j++) {  /* the tail that fills no whole group */
            bv[count] = VALUE(j);
            bi[count] = j;
            count += key_of(bv[count]) >= bound;
        }
        uint32_t kth = kth_largest_key(bv, count, k, 32);  /* 3. exact: those above, then ties */
        float *ov = out_v + r * k;
        int64_t *oi = out_i + r * k;
        int64_t taken = 0;
        for (int64_t c = 0; c < count; c++) {
            if (key_of(bv[c]) > kth) { ov[taken] = bv[c]; oi[taken] = bi[c]; taken++; }
        }
        for (int64_t c = 0; c < count && taken < k; c++) {
            if (key_of(bv[c]) == kth) { ov[taken] = bv[c]; oi[taken] = bi[c]; taken++; }
        }
    }
    free(gmax); free(bv); free(bi);
    return nan_rows;
}
