/* reward_model.h — a trained reward model (a Hugging Face
 * …ForSequenceClassification folder with num_labels 1, as `tuna reward`
 * saves it) scoring texts: the scalar head on the last token. What GRPO's
 * `--reward model:DIR` calls. */
#ifndef TUNA_TRAIN_REWARD_MODEL_H
#define TUNA_TRAIN_REWARD_MODEL_H
#include "tuna.h"

typedef struct reward_model reward_model;

/* The model and its tokenizer from dir. TUNA_ERR_ARG naming dir when it is
 * not a one-label sequence-classification model. */
tuna_status reward_model_open(reward_model **out, const char *dir);
void reward_model_free(reward_model *rm);
/* Scores of n texts (each a prompt followed by its completion, encoded as
 * sft encodes training text: the tokenizer's BOS in front, EOS appended). */
tuna_status reward_model_score(reward_model *rm, int n, const char *const *texts, double *out);
#endif
