/* Pillow 9.4's TIFF modes: its OPEN_INFO table and the unpackers of those
 * raw modes (tiff_modes.h), for decode_tiff.c. */
#include "tiff_modes.h"

#include <string.h>

/* ---- Pillow's OPEN_INFO ------------------------------------------------- */


/* Fill order 2 keys are listed for their presence only: libtiff reverses
 * the bits and the fill order 1 entry is used. Their raw mode is "+" where
 * Pillow's own reader of uncompressed data has an unpacker for it, "-"
 * where it has none and refuses the file. */
static const open_info OPEN_INFO[] = {
	{'*', 0, 1, 1, 1, 1, 0, {0}, "1", "1;I"},
	{'*', 0, 1, 2, 1, 1, 0, {0}, "1", "+"},
	{'*', 1, 1, 1, 1, 1, 0, {0}, "1", "1"},
	{'*', 1, 1, 2, 1, 1, 0, {0}, "1", "+"},
	{'*', 0, 1, 1, 1, 2, 0, {0}, "L", "L;2I"},
	{'*', 0, 1, 2, 1, 2, 0, {0}, "L", "+"},
	{'*', 1, 1, 1, 1, 2, 0, {0}, "L", "L;2"},
	{'*', 1, 1, 2, 1, 2, 0, {0}, "L", "+"},
	{'*', 0, 1, 1, 1, 4, 0, {0}, "L", "L;4I"},
	{'*', 0, 1, 2, 1, 4, 0, {0}, "L", "+"},
	{'*', 1, 1, 1, 1, 4, 0, {0}, "L", "L;4"},
	{'*', 1, 1, 2, 1, 4, 0, {0}, "L", "+"},
	{'*', 0, 1, 1, 1, 8, 0, {0}, "L", "L;I"},
	{'*', 0, 1, 2, 1, 8, 0, {0}, "L", "-"},
	{'*', 1, 1, 1, 1, 8, 0, {0}, "L", "L"},
	{'*', 1, 1, 2, 1, 8, 0, {0}, "L", "+"},
	{'I', 1, 1, 1, 1, 12, 0, {0}, "I;16", "I;12"},
	{'I', 0, 1, 1, 1, 16, 0, {0}, "I;16", "I;16N"},
	{'I', 1, 1, 1, 1, 16, 0, {0}, "I;16", "I;16N"},
	{'M', 1, 1, 1, 1, 16, 0, {0}, "I;16B", "I;16N"},
	{'I', 1, 1, 2, 1, 16, 0, {0}, "I;16", "+"},
	{'I', 1, 2, 1, 1, 16, 0, {0}, "I", "I;16S"},
	{'M', 1, 2, 1, 1, 16, 0, {0}, "I", "I;16NS"},
	{'I', 0, 3, 1, 1, 32, 0, {0}, "F", "F;32F"},
	{'M', 0, 3, 1, 1, 32, 0, {0}, "F", "F;32BF"},
	{'I', 1, 1, 1, 1, 32, 0, {0}, "I", "I;32N"},
	{'I', 1, 2, 1, 1, 32, 0, {0}, "I", "I;32S"},
	{'M', 1, 2, 1, 1, 32, 0, {0}, "I", "I;32BS"},
	{'I', 1, 3, 1, 1, 32, 0, {0}, "F", "F;32F"},
	{'M', 1, 3, 1, 1, 32, 0, {0}, "F", "F;32BF"},
	{'*', 1, 1, 1, 2, 8, 1, {2}, "LA", "LA"},
	{'*', 2, 1, 1, 3, 8, 0, {0}, "RGB", "RGB"},
	{'*', 2, 1, 2, 3, 8, 0, {0}, "RGB", "+"},
	{'*', 2, 1, 1, 4, 8, 0, {0}, "RGBA", "RGBA"},
	{'*', 2, 1, 1, 4, 8, 1, {0}, "RGBX", "RGBX"},
	{'*', 2, 1, 1, 5, 8, 2, {0, 0}, "RGBX", "RGBXX"},
	{'*', 2, 1, 1, 6, 8, 3, {0, 0, 0}, "RGBX", "RGBXXX"},
	{'*', 2, 1, 1, 4, 8, 1, {1}, "RGBA", "RGBa"},
	{'*', 2, 1, 1, 5, 8, 2, {1, 0}, "RGBA", "RGBaX"},
	{'*', 2, 1, 1, 6, 8, 3, {1, 0, 0}, "RGBA", "RGBaXX"},
	{'*', 2, 1, 1, 4, 8, 1, {2}, "RGBA", "RGBA"},
	{'*', 2, 1, 1, 5, 8, 2, {2, 0}, "RGBA", "RGBAX"},
	{'*', 2, 1, 1, 6, 8, 3, {2, 0, 0}, "RGBA", "RGBAXX"},
	{'*', 2, 1, 1, 4, 8, 1, {999}, "RGBA", "RGBA"},
	{'*', 2, 1, 1, 3, 16, 0, {0}, "RGB", "RGB;16N"},
	{'*', 2, 1, 1, 4, 16, 0, {0}, "RGBA", "RGBA;16N"},
	{'*', 2, 1, 1, 4, 16, 1, {0}, "RGBX", "RGBX;16N"},
	{'*', 2, 1, 1, 4, 16, 1, {1}, "RGBA", "RGBa;16N"},
	{'*', 2, 1, 1, 4, 16, 1, {2}, "RGBA", "RGBA;16N"},
	{'*', 3, 1, 1, 1, 1, 0, {0}, "P", "P;1"},
	{'*', 3, 1, 2, 1, 1, 0, {0}, "P", "-"},
	{'*', 3, 1, 1, 1, 2, 0, {0}, "P", "P;2"},
	{'*', 3, 1, 2, 1, 2, 0, {0}, "P", "-"},
	{'*', 3, 1, 1, 1, 4, 0, {0}, "P", "P;4"},
	{'*', 3, 1, 2, 1, 4, 0, {0}, "P", "-"},
	{'*', 3, 1, 1, 1, 8, 0, {0}, "P", "P"},
	{'*', 3, 1, 1, 2, 8, 1, {2}, "PA", "PA"},
	{'*', 3, 1, 2, 1, 8, 0, {0}, "P", "-"},
	{'*', 5, 1, 1, 4, 8, 0, {0}, "CMYK", "CMYK"},
	{'*', 5, 1, 1, 5, 8, 1, {0}, "CMYK", "CMYKX"},
	{'*', 5, 1, 1, 6, 8, 2, {0, 0}, "CMYK", "CMYKXX"},
	{'I', 5, 1, 1, 4, 16, 0, {0}, "CMYK", "CMYK;16N"},
	{'*', 6, 1, 1, 3, 8, 0, {0}, "RGB", "RGBX"},
	{'*', 8, 1, 1, 3, 8, 0, {0}, "LAB", "LAB"},
};

const open_info *aim_tiff_open_info(char order, uint16_t photo, uint16_t format, uint16_t fill,
				     uint16_t spp, uint16_t bits, uint16_t nextra, const uint16_t *extra)
{
	for (size_t i = 0; i < sizeof OPEN_INFO / sizeof *OPEN_INFO; i++) {
		const open_info *e = &OPEN_INFO[i];
		if ((e->order != '*' && e->order != order) || e->photo != photo || e->format != format ||
		    e->fill != fill || e->spp != spp || e->bits != bits || e->nextra != nextra)
			continue;
		int same = 1;
		for (int k = 0; k < nextra; k++)
			same &= e->extra[k] == extra[k];
		if (same)
			return e;
	}
	return NULL;
}

/* ---- Pillow's unpackers for those raw modes ----------------------------- */


int aim_tiff_raw_format(const char *mode, const char *raw, int compressed, raw_fmt *f)
{
	static const struct {
		const char *raw;
		raw_kind kind;
		int bits;
		aim_pilmode pm;
	} simple[] = {
		{"1", R_BITS1, 1, AIM_PM_1},     {"1;I", R_BITS1I, 1, AIM_PM_1},   {"L;2", R_L2, 2, AIM_PM_L},
		{"L;2I", R_L2I, 2, AIM_PM_L},    {"L;4", R_L4, 4, AIM_PM_L},       {"L;4I", R_L4I, 4, AIM_PM_L},
		{"L", R_L, 8, AIM_PM_L},         {"L;I", R_LI, 8, AIM_PM_L},       {"I;12", R_I12, 12, AIM_PM_I16},
		{"I;16N", R_I16, 16, AIM_PM_I16}, {"I;16S", R_I16S_LE, 16, AIM_PM_I}, {"I;16NS", R_I16S, 16, AIM_PM_I},
		{"I;32N", R_I32, 32, AIM_PM_I},  {"I;32S", R_I32_LE, 32, AIM_PM_I}, {"I;32BS", R_I32_BE, 32, AIM_PM_I},
		{"F;32F", R_F32_LE, 32, AIM_PM_F}, {"F;32BF", R_F32_BE, 32, AIM_PM_F}, {"P;1", R_P1, 1, AIM_PM_P},
		{"P;2", R_P2, 2, AIM_PM_P},      {"P;4", R_P4, 4, AIM_PM_P},       {"P", R_L, 8, AIM_PM_P},
	};
	memset(f, 0, sizeof *f);
	for (size_t i = 0; i < sizeof simple / sizeof *simple; i++)
		if (!strcmp(raw, simple[i].raw)) {
			f->kind = simple[i].kind;
			f->bits = simple[i].bits;
			f->pm = simple[i].pm;
			/* Pillow's own reader of uncompressed data reads every sample in
			 * the file's order; the libtiff path reads libtiff's native
			 * buffer with the file's order named by the raw mode */
			if (!compressed) {
				if (f->kind == R_I16S_LE)
					f->kind = R_I16S;
				else if (f->kind == R_I32_LE || f->kind == R_I32_BE)
					f->kind = R_I32;
				else if (f->kind == R_F32_LE || f->kind == R_F32_BE)
					f->kind = R_F32;
			}
			return 0;
		}
	/* multi-sample: letters, X for a skipped sample, a for premultiplied
	 * alpha, ;16N for 16-bit samples */
	f->kind = R_SAMPLES;
	f->wide = strstr(raw, ";16N") != NULL;
	size_t n = strcspn(raw, ";");
	f->nin = (int)n;
	f->premul = strchr(raw, 'a') != NULL && strncmp(raw, "LA", 2) != 0;
	if (!strcmp(mode, "LA") || !strcmp(mode, "PA")) {
		f->nout = 2;
		f->pm = mode[0] == 'L' ? AIM_PM_LA : AIM_PM_PA;
	} else if (!strcmp(mode, "RGB")) {
		f->nout = 3;
		f->pm = AIM_PM_RGB;
	} else if (!strcmp(mode, "RGBA") || !strcmp(mode, "RGBX")) {
		f->nout = 4;
		f->pm = AIM_PM_RGBA;
	} else if (!strcmp(mode, "CMYK")) {
		f->nout = 4;
		f->pm = AIM_PM_CMYK;
	} else {
		return -1; /* LAB: Pillow converts it with LittleCMS */
	}
	if (f->nin < f->nout)
		return -1;
	f->bits = f->nin * (f->wide ? 16 : 8);
	return 0;
}

void aim_tiff_unpack(const raw_fmt *f, const uint8_t *in, int n, uint8_t *out)
{
	int x;
	switch (f->kind) {
	case R_BITS1: case R_BITS1I: case R_P1:
		for (x = 0; x < n; x++) {
			int bit = (in[x >> 3] >> (7 - (x & 7))) & 1;
			out[x] = f->kind == R_P1 ? (uint8_t)bit : (uint8_t)((bit ^ (f->kind == R_BITS1I)) ? 255 : 0);
		}
		break;
	case R_L2: case R_L2I: case R_P2:
		for (x = 0; x < n; x++) {
			int v = (in[x >> 2] >> (6 - 2 * (x & 3))) & 3;
			out[x] = f->kind == R_P2 ? (uint8_t)v : f->kind == R_L2 ? (uint8_t)(v * 0x55) : (uint8_t)(255 - v * 0x55);
		}
		break;
	case R_L4: case R_L4I: case R_P4:
		for (x = 0; x < n; x++) {
			int v = (in[x >> 1] >> (4 - 4 * (x & 1))) & 15;
			out[x] = f->kind == R_P4 ? (uint8_t)v : f->kind == R_L4 ? (uint8_t)(v * 0x11) : (uint8_t)(255 - v * 0x11);
		}
		break;
	case R_L:
		memcpy(out, in, (size_t)n);
		break;
	case R_LI:
		for (x = 0; x < n; x++)
			out[x] = (uint8_t)~in[x];
		break;
	case R_I12: /* two 12-bit samples in three bytes, most significant first */
		for (x = 0; x < n; x++) {
			const uint8_t *p = in + (x / 2) * 3;
			uint16_t v = x & 1 ? (uint16_t)(((p[1] & 15) << 8) | p[2]) : (uint16_t)((p[0] << 4) | (p[1] >> 4));
			memcpy(out + 2 * x, &v, 2);
		}
		break;
	case R_I16:
		memcpy(out, in, (size_t)n * 2);
		break;
	case R_I16S: case R_I16S_LE:
		for (x = 0; x < n; x++) {
			int16_t s;
			if (f->kind == R_I16S)
				memcpy(&s, in + 2 * x, 2);
			else
				s = (int16_t)(in[2 * x] | in[2 * x + 1] << 8);
			int32_t v = s;
			memcpy(out + 4 * x, &v, 4);
		}
		break;
	case R_I32: case R_F32:
		memcpy(out, in, (size_t)n * 4);
		break;
	case R_I32_LE: case R_I32_BE: case R_F32_LE: case R_F32_BE:
		for (x = 0; x < n; x++) {
			const uint8_t *p = in + 4 * x;
			uint32_t v = f->kind == R_I32_LE || f->kind == R_F32_LE
					     ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
					     : (uint32_t)p[3] | (uint32_t)p[2] << 8 | (uint32_t)p[1] << 16 | (uint32_t)p[0] << 24;
			memcpy(out + 4 * x, &v, 4);
		}
		break;
	case R_SAMPLES: {
		int step = f->wide ? 2 : 1;
		for (x = 0; x < n; x++) {
			const uint8_t *p = in + (size_t)x * f->nin * step;
			uint8_t *o = out + (size_t)x * f->nout;
			for (int k = 0; k < f->nout; k++) {
				uint16_t v;
				if (f->wide)
					memcpy(&v, p + 2 * k, 2);
				o[k] = f->wide ? (uint8_t)(v >> 8) : p[k];
			}
			if (f->premul)
				unpremultiply_rgba(o);
		}
		break;
	}
	}
}
