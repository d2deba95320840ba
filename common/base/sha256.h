/* SHA-256 (FIPS 180-4), for content stamps of input files: the digest a
 * manifest records is the one `sha256sum` prints, so users can check it. */
#ifndef AIM_SHA256_H
#define AIM_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
	uint32_t h[8];
	uint64_t len;      /* bytes hashed so far */
	uint8_t buf[64];
	size_t nbuf;
} aim_sha256;

void aim_sha256_init(aim_sha256 *s);
void aim_sha256_update(aim_sha256 *s, const void *data, size_t n);
void aim_sha256_final(aim_sha256 *s, uint8_t out[32]);
/* Hash a whole file, read in blocks. Returns 0 or AIM_ERR naming it. */
int aim_sha256_file(const char *path, uint8_t out[32]);

#endif
