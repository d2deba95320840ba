/* WebP through libwebp, as Pillow 9.4 opens it (its WebPAnimDecoder path):
 * the first frame of the canvas in RGBA (mode RGBA when the file says it
 * has alpha, else RGB), alpha then dropped by convert(). Pillow accepts
 * only RIFF/WEBP files whose first chunk is VP8, VP8L or VP8X. */
#include <string.h>

#include <webp/decode.h>
#include <webp/demux.h>

#include "codec.h"
#include "err.h"

int aim_decode_webp(const uint8_t *data, size_t len, int channels, int64_t max_pixels, aim_image *out)
{
	if (len < 16 || (memcmp(data + 12, "VP8 ", 4) && memcmp(data + 12, "VP8L", 4) &&
			 memcmp(data + 12, "VP8X", 4)))
		return aim_error("WebP: not a VP8, VP8L or VP8X file");
	WebPData src = {data, len};
	/* The canvas size first, from the demuxer (no pixels): the animation
	 * decoder allocates the whole canvas as it is made, and a 60-byte
	 * VP8X header can declare 64,602 × 28,260 (7.3 GB; found by the
	 * fuzzer). Pillow refuses such a canvas too (its decompression-bomb
	 * limit), only after the allocation. */
	WebPDemuxer *dmx = WebPDemux(&src);
	if (dmx) {
		uint32_t cw = WebPDemuxGetI(dmx, WEBP_FF_CANVAS_WIDTH);
		uint32_t ch = WebPDemuxGetI(dmx, WEBP_FF_CANVAS_HEIGHT);
		WebPDemuxDelete(dmx);
		if (aim_image_check_size("WebP", (int64_t)cw, (int64_t)ch, max_pixels) < 0)
			return AIM_ERR;
	}
	WebPAnimDecoder *dec = WebPAnimDecoderNew(&src, NULL); /* RGBA, as Pillow */
	WebPAnimInfo info;
	if (!dec || !WebPAnimDecoderGetInfo(dec, &info)) {
		WebPAnimDecoderDelete(dec);
		return aim_error("WebP: could not create decoder object");
	}
	if (aim_image_check_size("WebP", info.canvas_width, info.canvas_height, max_pixels) < 0) {
		WebPAnimDecoderDelete(dec);
		return AIM_ERR;
	}
	uint8_t *rgba;
	int timestamp;
	if (!WebPAnimDecoderGetNext(dec, &rgba, &timestamp)) {
		WebPAnimDecoderDelete(dec);
		return aim_error("WebP: failed to decode the first frame");
	}
	int w = (int)info.canvas_width, h = (int)info.canvas_height;
	if (aim_image_alloc(out, w, h, channels) < 0) {
		WebPAnimDecoderDelete(dec);
		return AIM_ERR;
	}
	for (int y = 0; y < h; y++)
		aim_pilmode_convert_row(AIM_PM_RGBA, NULL, rgba + (size_t)y * w * 4, w, channels,
					out->px + (size_t)y * w * channels);
	WebPAnimDecoderDelete(dec);
	return AIM_OK;
}
