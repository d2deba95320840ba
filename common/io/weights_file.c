/* Weights files by content (weights_file.h). */
#include "weights_file.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "pth.h"

/* The first bytes of a pre-1.6 torch.save file: PROTO 2, then the LONG1
 * magic number 0x1950a86a20f9469cfc6c that torch pickles first. */
static const unsigned char legacy_magic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c,
					     0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

aim_wf_kind aim_wf_sniff(const char *path)
{
	struct stat sb;
	if (stat(path, &sb) < 0)
		return AIM_WF_UNREADABLE;
	if (S_ISDIR(sb.st_mode))
		return AIM_WF_DIRECTORY;
	FILE *f = fopen(path, "rb");
	if (!f)
		return AIM_WF_UNREADABLE;
	unsigned char head[16];
	size_t n = fread(head, 1, sizeof head, f);
	fclose(f);
	if (n == 0)
		return AIM_WF_EMPTY;
	if (n >= 4 && !memcmp(head, "PK\3\4", 4))
		return AIM_WF_TORCH_ZIP;
	if (n >= sizeof legacy_magic && !memcmp(head, legacy_magic, sizeof legacy_magic))
		return AIM_WF_TORCH_LEGACY;
	if (n >= 9 && head[8] == '{') {
		uint64_t len = 0;
		for (int i = 7; i >= 0; i--)
			len = len << 8 | head[i];
		if (len >= 2 && len <= AIM_MAX_HEADER && len <= (uint64_t)sb.st_size - 8)
			return AIM_WF_SAFETENSORS;
	}
	return AIM_WF_OTHER;
}

int aim_wf_open(aim_weights_file *w, const char *path)
{
	memset(w, 0, sizeof *w);
	aim_record_init(&w->rec);
	switch (aim_wf_sniff(path)) {
	case AIM_WF_TORCH_ZIP:
		return aim_pth_load(path, &w->rec);
	case AIM_WF_TORCH_LEGACY:
		return aim_error("%s: " AIM_WF_LEGACY_ADVICE, path);
	case AIM_WF_DIRECTORY:
		return aim_error("%s: a directory, not a weights file (.safetensors or a PyTorch "
				 "checkpoint)", path);
	case AIM_WF_EMPTY:
		return aim_error("%s: an empty file, not a weights file", path);
	default: /* safetensors, or unreadable or unknown: the parser says what is wrong */
		if (aim_st_open(&w->st, path))
			return AIM_ERR;
		w->mapped = 1;
		return 0;
	}
}

aim_record *aim_wf_record(aim_weights_file *w) { return w->mapped ? &w->st.rec : &w->rec; }

void aim_wf_close(aim_weights_file *w)
{
	if (w->mapped)
		aim_st_close(&w->st);
	else
		aim_record_free(&w->rec);
	w->mapped = 0;
}
