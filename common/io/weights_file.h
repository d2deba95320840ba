/* Model and head files recognised by what they hold, never by their name.
 *
 * Every tool that reads weights (a model, a probe head, an --init head)
 * opens them here: a safetensors file is mapped, a PyTorch zip checkpoint
 * is loaded (pth.h), and a file that is neither is an error saying what it
 * is: a legacy (pre-1.6) torch.save file with the command that converts
 * it, a directory, an empty file. */
#ifndef AIM_WEIGHTS_FILE_H
#define AIM_WEIGHTS_FILE_H

#include "record.h"
#include "safetensors.h"

typedef enum {
	AIM_WF_UNREADABLE = -1, /* cannot be opened (errno says why) */
	AIM_WF_OTHER = 0,       /* none of the below: read as safetensors for its message */
	AIM_WF_SAFETENSORS,     /* u64 header length, then a JSON object: '{' */
	AIM_WF_TORCH_ZIP,       /* "PK\3\4": torch.save since 1.6 (a zip archive) */
	AIM_WF_TORCH_LEGACY,    /* pickle protocol 2 + torch's magic number: torch.save before 1.6 */
	AIM_WF_DIRECTORY,       /* e.g. a Hugging Face model directory */
	AIM_WF_EMPTY,           /* 0 bytes */
} aim_wf_kind;

/* What the file at path is, from its first bytes (or its type). */
aim_wf_kind aim_wf_sniff(const char *path);

/* The one-line advice for a legacy torch file (also pth.c's message). */
#define AIM_WF_LEGACY_ADVICE                                                                \
	"a PyTorch checkpoint in the legacy format (torch.save before torch 1.6, or "        \
	"_use_new_zipfile_serialization=False), which aim does not read; re-save it in the " \
	"zip format: python3 -c 'import torch,sys; torch.save(torch.load(sys.argv[1]), "     \
	"sys.argv[2])' IN OUT"

typedef struct {
	aim_stfile st;  /* safetensors: mapped */
	aim_record rec; /* PyTorch checkpoint: loaded */
	int mapped;     /* 1: st, 0: rec */
} aim_weights_file;

/* Open a weights file by its content. Returns 0, or AIM_ERR with a message
 * naming the path and what the file is. */
int aim_wf_open(aim_weights_file *w, const char *path);
aim_record *aim_wf_record(aim_weights_file *w);
void aim_wf_close(aim_weights_file *w);

#endif
