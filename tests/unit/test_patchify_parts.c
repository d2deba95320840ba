/* The parts of aim-patchify that need no Pillow to check: sizes and offsets
 * of the val transform (worked by hand from torchvision's formulas), the
 * resize on images whose result is known exactly, the ImageFolder walk
 * order, WebDataset listing, and the train draws' determinism. The pixel
 * parity with Pillow is tests/ref/test_patchify_*.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "image.h"
#include "imgsrc.h"
#include "resample.h"
#include "transform.h"

static void test_sizes(void)
{
	int ow, oh;
	CHECK(aim_val_resize_for(224) == 256);
	CHECK(aim_val_resize_for(28) == 32);
	CHECK(aim_val_resize_for(7) == 8);
	CHECK(aim_val_resize_for(1) == 2); /* ceil(1.142...) */
	aim_val_resized_size(400, 450, 256, &ow, &oh);
	CHECK(ow == 256 && oh == 288);
	aim_val_resized_size(450, 400, 256, &ow, &oh);
	CHECK(ow == 288 && oh == 256);
	aim_val_resized_size(3, 1000, 256, &ow, &oh); /* int(256*1000/3) = 85333 */
	CHECK(ow == 256 && oh == 85333);
	aim_val_resized_size(7, 7, 256, &ow, &oh);
	CHECK(ow == 256 && oh == 256);
	aim_val_resized_size(300, 301, 256, &ow, &oh); /* 256*301/300 = 256.85 */
	CHECK(ow == 256 && oh == 256);
}

/* A constant image stays constant through any resize and crop (weights
 * sum to one in fixed point within rounding). */
static void test_constant(void)
{
	aim_image im;
	CHECK(aim_image_alloc(&im, 37, 23, 3) == 0);
	memset(im.px, 173, 37 * 23 * 3);
	uint8_t out[16 * 16 * 3];
	CHECK(aim_transform_val(&im, 16, 19, out) == 0);
	int bad = 0;
	for (size_t i = 0; i < sizeof out; i++)
		bad += out[i] != 173;
	CHECK_MSG(bad == 0, "%d pixels changed", bad);
	aim_image_free(&im);
}

/* Resizing to the same size is the identity (Pillow copies), and a window
 * of a resize equals the same region of the full resize. */
static void test_identity_and_window(void)
{
	int w = 29, h = 31;
	uint8_t *src = malloc((size_t)w * h * 3), *dst = malloc((size_t)w * h * 3);
	for (int i = 0; i < w * h * 3; i++)
		src[i] = (uint8_t)(i * 37 + (i >> 3));
	CHECK(aim_resize_bicubic(src, w, h, (size_t)w * 3, 3, w, h, 0, 0, w, h, dst) == 0);
	CHECK(memcmp(src, dst, (size_t)w * h * 3) == 0);
	int ow = 17, oh = 45;
	uint8_t *full = malloc((size_t)ow * oh * 3), *win = malloc(5 * 7 * 3);
	CHECK(aim_resize_bicubic(src, w, h, (size_t)w * 3, 3, ow, oh, 0, 0, ow, oh, full) == 0);
	CHECK(aim_resize_bicubic(src, w, h, (size_t)w * 3, 3, ow, oh, 3, 20, 5, 7, win) == 0);
	int bad = 0;
	for (int y = 0; y < 7; y++)
		bad += memcmp(win + y * 5 * 3, full + ((size_t)(y + 20) * ow + 3) * 3, 5 * 3) != 0;
	CHECK(bad == 0);
	free(src);
	free(dst);
	free(full);
	free(win);
}

/* A padded centre crop: a 2x2 image, R = 2, S = 5: the image lands at
 * (5-2)//2 = 1 from the top-left, the rest is black. */
static void test_padding(void)
{
	aim_image im;
	CHECK(aim_image_alloc(&im, 2, 2, 1) == 0);
	im.px[0] = 10, im.px[1] = 20, im.px[2] = 30, im.px[3] = 40;
	uint8_t out[25];
	CHECK(aim_transform_val(&im, 5, 2, out) == 0);
	const uint8_t want[25] = {0, 0, 0, 0, 0, 0, 10, 20, 0, 0, 0, 30, 40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
	CHECK(memcmp(out, want, 25) == 0);
	aim_image_free(&im);
}

static void touch(const char *path)
{
	FILE *f = fopen(path, "w");
	if (f)
		fclose(f);
}

/* torchvision walks sorted(os.walk(class_dir)): folders in the sorted order
 * of their paths, so "c/a-b" comes between "c/a" and "c/a/z". */
static void test_walk_order(void)
{
	char root[] = "/tmp/aim_walk_XXXXXX", p[256];
	CHECK(mkdtemp(root) != NULL);
	const char *dirs[] = {"", "/cat", "/cat/a", "/cat/a/z", "/cat/a-b", "/dog"};
	for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
		snprintf(p, sizeof p, "%s%s", root, dirs[i]);
		mkdir(p, 0755);
	}
	const char *files[] = {"/cat/b.PNG", "/cat/a.jpg", "/cat/notes.txt", "/cat/a/z/q.jpeg",
			       "/cat/a-b/m.png", "/cat/a/y.webp", "/dog/d.jpg"};
	for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
		snprintf(p, sizeof p, "%s%s", root, files[i]);
		touch(p);
	}
	aim_imglist l;
	aim_imglist_init(&l);
	CHECK(aim_imglist_add(&l, root, AIM_CLASSES_AUTO) == 0);
	const char *want[] = {"/cat/a.jpg", "/cat/b.PNG", "/cat/a/y.webp", "/cat/a-b/m.png",
			      "/cat/a/z/q.jpeg", "/dog/d.jpg"};
	const int label[] = {0, 0, 0, 0, 0, 1};
	CHECK(l.n == 6 && l.nclasses == 2);
	for (int i = 0; i < 6 && i < l.n; i++) {
		snprintf(p, sizeof p, "%s%s", root, want[i]);
		CHECK_MSG(!strcmp(l.items[i].name, p), "item %d: %s, want %s", i, l.items[i].name, p);
		CHECK(l.items[i].label == label[i]);
	}
	aim_imglist_free(&l);
	/* --classes none: one tree, labels -1 */
	aim_imglist_init(&l);
	CHECK(aim_imglist_add(&l, root, AIM_CLASSES_NONE) == 0);
	CHECK(l.n == 6 && l.nclasses == 0 && l.items[0].label == -1);
	aim_imglist_free(&l);
	snprintf(p, sizeof p, "rm -rf '%s'", root);
	CHECK(system(p) == 0);
}

static void test_train_draws(void)
{
	aim_train_aug a;
	aim_train_aug_default(&a);
	aim_train_draw d1, d2, d3;
	int differ = 0;
	for (int id = 0; id < 200; id++) {
		aim_train_draw_params(&a, 5, 1, id, 400, 300, 224, &d1);
		aim_train_draw_params(&a, 5, 1, id, 400, 300, 224, &d2);
		aim_train_draw_params(&a, 5, 2, id, 400, 300, 224, &d3);
		CHECK(memcmp(&d1, &d2, sizeof d1) == 0);
		differ += d1.top != d3.top || d1.left != d3.left || d1.w != d3.w;
		/* the crop lies inside the image, its area within the scale range
		 * (up to rounding) */
		CHECK(d1.top >= 0 && d1.left >= 0 && d1.top + d1.h <= 300 && d1.left + d1.w <= 400);
		double area = (double)d1.w * d1.h / (400.0 * 300.0);
		CHECK(area > 0.39 && area <= 1.0);
	}
	CHECK(differ > 150);
	/* an image too thin for any ratio: torchvision's central fallback */
	aim_train_draw_params(&a, 5, 0, 0, 1000, 3, 224, &d1);
	CHECK(d1.h == 3 && d1.w == 4 && d1.top == 0 && d1.left == 498);

	/* --translate 2 on a 28 x 28 image: every one of the 5 x 5 offsets of
	 * RandomCrop(28, padding=2), evenly */
	a.translate = 2;
	int seen[5][5] = {{0}};
	for (int id = 0; id < 2500; id++) {
		aim_train_draw_params(&a, 9, 0, id, 28, 28, 28, &d1);
		CHECK(d1.h == 28 && d1.w == 28);
		CHECK(d1.top >= -2 && d1.top <= 2 && d1.left >= -2 && d1.left <= 2);
		if (d1.top >= -2 && d1.top <= 2 && d1.left >= -2 && d1.left <= 2)
			seen[d1.top + 2][d1.left + 2]++;
	}
	for (int y = 0; y < 5; y++)
		for (int x = 0; x < 5; x++)
			CHECK(seen[y][x] > 60 && seen[y][x] < 140);
	/* an image smaller than the window after padding (pad_if_needed): a
	 * 5 x 3 image padded to 9 x 7, then grown by 2 x 19 and 2 x 21 */
	int lo_top = 99, hi_top = -99, lo_left = 99, hi_left = -99;
	for (int id = 0; id < 4000; id++) {
		aim_train_draw_params(&a, 9, 0, id, 5, 3, 28, &d1);
		lo_top = d1.top < lo_top ? d1.top : lo_top;
		hi_top = d1.top > hi_top ? d1.top : hi_top;
		lo_left = d1.left < lo_left ? d1.left : lo_left;
		hi_left = d1.left > hi_left ? d1.left : hi_left;
	}
	CHECK(lo_top == -23 && hi_top == -2 && lo_left == -21 && hi_left == -2);
}

static void test_sniff(void)
{
	CHECK(!strcmp(aim_image_sniff("\xFF\xD8\xFF\xE0", 4), "JPEG"));
	CHECK(!strcmp(aim_image_sniff("\x89PNG\r\n\x1a\n", 8), "PNG"));
	CHECK(!strcmp(aim_image_sniff("GIF89a", 6), "GIF"));
	CHECK(aim_image_sniff("hello", 5) == NULL);
	aim_image im;
	CHECK(aim_image_decode("\xFF\xD8\xFF\xE0\0\x10JFIF", 10, 3, 0, &im) < 0);
	CHECK(aim_image_decode("", 0, 3, 0, &im) < 0);
}

int main(void)
{
	test_sizes();
	test_constant();
	test_identity_and_window();
	test_padding();
	test_walk_order();
	test_train_draws();
	test_sniff();
	return check_summary("test_patchify_parts");
}
