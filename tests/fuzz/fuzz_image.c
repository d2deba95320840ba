/* libFuzzer target: every image decoder (JPEG, PNG, WebP, GIF, BMP, TIFF,
 * PPM/PGM/PBM: the format is sniffed from the bytes) and both transforms on
 * arbitrary bytes. A bad image must come back as an error, never a crash,
 * a read out of bounds, a leak or an exit() from a library. The seed corpus
 * holds a file of each format and mode and the damaged files of the tests
 * (tests/ref/patchify_ref.py gen-formats, gen-damaged; small TIFFs of each
 * mode and compression made with tests/ref/tiff_ref.py's writer and
 * Pillow, and its edge cases). */
#include <stdint.h>
#include <stdlib.h>

#include "image.h"
#include "transform.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static uint8_t out[32 * 32 * 3];
	int channels = size && (data[size - 1] & 1) ? 1 : 3;
	aim_image im;
	/* a small pixel limit keeps each run fast; the decoders are the target */
	if (aim_image_decode(data, size, channels, 1 << 20, &im) == 0) {
		aim_transform_val(&im, 32, 37, out);
		aim_train_aug aug;
		aim_train_aug_default(&aug);
		aug.brightness = aug.contrast = aug.saturation = 0.5;
		aim_train_draw d;
		aim_train_draw_params(&aug, 1, 0, (int64_t)size, im.w, im.h, 32, &d);
		aim_transform_train(&im, 32, &d, out);
		aim_image_free(&im);
	}
	return 0;
}
