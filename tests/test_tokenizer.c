/* tests/test_tokenizer.c: the CLIP tokenizer.
 *   - With the real vocabulary (OpenAI's bpe_simple_vocab_16e6.txt.gz, which tools/setup.sh takes
 *     out of the open-clip-torch wheel into build/data/): the ids of Hugging Face's CLIPTokenizer
 *     for every prompt of tests/ref/clip_tokenizer_corpus.jsonl (1,020 prompts: punctuation,
 *     numbers, contractions, many scripts, emoji, control characters, whitespace runs, long and
 *     empty prompts; tools/refgen/make_tokenizer_refs.py), padded to 77 with their mask.
 *   - Prompts through the tokenizer and a frozen encoder, the empty prompt filling the batch.
 *   - A small Hugging Face folder written here: BPE merges, the pad token from
 *     tokenizer_config.json, and the errors: a missing or malformed file, a vocabulary without
 *     CLIP's special tokens, a prompt that is not UTF-8 (with its byte offset); files that are
 *     not a vocabulary (a NUL byte, random bytes, no merges, symbols that are not byte-level
 *     BPE's), named with their line.
 *   - The longest text taken (a 64 KiB word, 32,767 combining marks): the ids of the previous,
 *     quadratic implementation; longer text refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "ldmcl/clip.h"
#include "ldmcl/tokenizer.h"
#include "test_util.h"

static const char *bpe_path(void) {
    const char *p = getenv("LDMCL_CLIP_BPE");
    return p && *p ? p : LDMCL_CLIP_BPE_DEFAULT;
}

static void matches_hugging_face_on_the_corpus(void **state) {
    (void)state;
    const char *path = bpe_path();
    if (!test_file_exists(path))
        fail_msg("%s is missing: tools/setup.sh takes it out of the open-clip-torch wheel "
                 "(tools/fetch_clip_vocab.sh), or set LDMCL_CLIP_BPE to a copy",
                 path);
    ldm_clip_tokenizer *t;
    assert_status(ldm_clip_tokenizer_load_bpe(path, &t), LDM_OK);
    assert_int_equal(ldm_clip_tokenizer_vocab_size(t), 49408);
    assert_int_equal(ldm_clip_tokenizer_bos(t), 49406);
    assert_int_equal(ldm_clip_tokenizer_eos(t), 49407);
    assert_int_equal(ldm_clip_tokenizer_pad(t), 49407);
    char corpus[4096];
    snprintf(corpus, sizeof corpus, "%s/clip_tokenizer_corpus.jsonl", LDMCL_TEST_REF_DIR);
    size_t len;
    char *text = (char *)test_read_file(corpus, &len);
    int prompts = 0, wrong = 0, truncated = 0;
    char *line = text;
    while (line && *line) {
        char *next = strchr(line, '\n');
        if (next) *next++ = 0;
        char err[128];
        ldm_json *j = ldm_json_parse(line, strlen(line), err, sizeof err);
        if (!j) fail_msg("%s line %d: %s", corpus, prompts + 1, err);
        const ldm_json *p = ldm_json_get(j, "text"), *want = ldm_json_get(j, "ids");
        assert_true(p && p->type == LDM_JSON_STRING && want && want->type == LDM_JSON_ARRAY);
        int32_t ids[77], mask[77];
        int count = 0;
        assert_status(ldm_clip_tokenize(t, p->string, p->length, 77, 1, ids, mask, &count), LDM_OK);
        assert_int_equal(count, 77);
        int ok = 1;
        for (int k = 0; k < 77; k++) {
            int real = k < (int)want->count;
            int32_t w = real ? (int32_t)want->items[k].integer : 49407;
            ok &= ids[k] == w && mask[k] == real;
        }
        if (!ok && wrong++ < 5) {
            fprintf(stderr, "prompt %d differs: %s\n  ldmcl:", prompts + 1, line);
            for (int k = 0; k < 77 && mask[k]; k++)
                fprintf(stderr, " %d", ids[k]);
            fprintf(stderr, "\n");
        }
        truncated += want->count == 77;
        prompts++;
        ldm_json_free(j);
        line = next;
    }
    printf("  %d prompts (%d truncated to 77 tokens): %d differ from Hugging Face's "
           "CLIPTokenizer\n",
           prompts, truncated, wrong);
    assert_true(prompts >= 1000);
    assert_int_equal(wrong, 0);
    free(text);
    ldm_clip_tokenizer_destroy(t);
}

/* Prompts through the tokenizer and a (small, random) encoder: the same as tokenizing and running
 * the encoder by hand; rows past the prompts are the empty prompt; a bad prompt is named. */
static void prompts_encode_with_the_empty_prompt_after_them(void **state) {
    (void)state;
    ldm_clip_tokenizer *t;
    assert_status(ldm_clip_tokenizer_load_bpe(bpe_path(), &t), LDM_OK);
    ldm_ctx *ctx = test_ctx_open(NULL, NULL);
    ldm_clip_text_config c = {.vocab_size = 49408,
                              .hidden_size = 8,
                              .intermediate_size = 16,
                              .num_layers = 1,
                              .num_heads = 2,
                              .max_positions = 77,
                              .layer_norm_eps = 1e-5f,
                              .act = LDM_CLIP_QUICK_GELU};
    /* an encoder on the weights of a graph that holds the text model (as a training step
     * shares its encoder with the validation sampler) */
    ldm_graph *g;
    assert_status(ldm_graph_create(ctx, &g), LDM_OK);
    ldm_clip_text(g, &c, ldm_graph_input(g, "ids", LDM_SHAPE(1, 77)), NULL, 0);
    assert_status(ldm_graph_compile(g), LDM_OK);
    assert_status(ldm_graph_init_params(g, 3, 0), LDM_OK);
    ldm_clip_encoder *e;
    assert_status(ldm_clip_encoder_create_in(ctx, ldm_graph_params(g), &c, 3, 77, 0, &e), LDM_OK);
    const char *prompts[2] = {"a photo of a sneaker", "an ankle boot, 2nd-hand"};
    float *got = malloc(3 * 77 * 8 * sizeof *got), *want = malloc(3 * 77 * 8 * sizeof *want);
    int32_t ids[3 * 77], mask[3 * 77];
    assert_true(got && want);
    assert_status(ldm_clip_encode_prompts(e, t, prompts, 2, got), LDM_OK);
    int n;
    for (int b = 0; b < 3; b++) {
        const char *p = b < 2 ? prompts[b] : "";
        assert_status(ldm_clip_tokenize(t, p, strlen(p), 77, 1, ids + b * 77, mask + b * 77, &n),
                      LDM_OK);
    }
    assert_status(ldm_clip_encoder_run(e, ids, mask, want), LDM_OK);
    assert_memory_equal(got, want, 3 * 77 * 8 * sizeof *got);
    /* a tokenizer of more tokens than the encoder embeds: refused before any work, naming the
     * tokenizer's file and both sizes */
    assert_status(ldm_clip_tokenizer_check_vocab(t, 49408, "config.json"), LDM_OK);
    assert_status(ldm_clip_tokenizer_check_vocab(t, 1000, "its config.json"), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "bpe_simple_vocab_16e6.txt.gz' has 49408 tokens but the "
                                      "text encoder (its config.json) embeds 1000 (vocab_size): "
                                      "ids 1000 to 49407");
    ldm_clip_text_config small = c;
    small.vocab_size = 1000;
    ldm_clip_encoder *e_small;
    assert_status(ldm_clip_encoder_create(ctx, &small, 1, 77, 0, &e_small), LDM_OK);
    assert_status(ldm_clip_encode_prompts(e_small, t, prompts, 1, got), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "has 49408 tokens but the text encoder");
    assert_contains(ldm_last_error(), "embeds 1000");
    ldm_clip_encoder_destroy(e_small);
    const char *bad[1] = {"ok \xff"};
    assert_status(ldm_clip_encode_prompts(e, t, bad, 1, got), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "prompt 0: src/text/clip_tokenize.c:"); /* one colon */
    assert_contains(ldm_last_error(), "byte offset 3");
    free(got);
    free(want);
    ldm_graph_destroy(g);
    ldm_clip_encoder_destroy(e);
    ldm_ctx_destroy(ctx);
    ldm_clip_tokenizer_destroy(t);
}

/* Inputs that took seconds (BPE rescanning a word after each merge: 8 s for a 100,000-letter
 * word; canonical ordering by insertion: 14 s for 200 KB of alternating combining marks): the
 * longest text the tokenizer takes, as one random 65,536-letter word and as a letter followed by
 * 32,767 combining marks of two classes, gives the ids the previous, quadratic implementation
 * gave (the reference's algorithm, run once to write them here); one byte more is refused. */
static void long_words_give_the_same_ids(void **state) {
    (void)state;
    ldm_clip_tokenizer *t;
    assert_status(ldm_clip_tokenizer_load_bpe(bpe_path(), &t), LDM_OK);
    const size_t n = LDM_CLIP_MAX_TEXT_BYTES;
    char *s = malloc(n + 1);
    assert_non_null(s);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        s[i] = (char)('a' + (x >> 16) % 26);
    }
    static const int32_t word[77] = {
        49406, 548,   4397,  18289, 7548,  87,    76,    2651, 65,   8440,  71,    2166, 80,
        18289, 9430,  89,    663,   76,    609,   1441,  2169, 80,   1082,  66,    921,  15534,
        76,    27885, 17913, 89,    20572, 87,    10869, 3181, 8440, 73,    1021,  561,  1152,
        664,   19329, 11581, 80,    87,    12476, 5063,  87,   89,   7536,  40591, 8498, 1836,
        40917, 529,   1836,  73,    1291,  88,    4898,  778,  80,   10190, 69,    712,  8959,
        557,   627,   80,    1470,  17913, 690,   552,   7905, 732,  86,    770,   49407};
    int32_t ids[77], mask[77];
    int count = 0;
    assert_status(ldm_clip_tokenize(t, s, n, 77, 1, ids, mask, &count), LDM_OK);
    assert_int_equal(count, 77);
    assert_memory_equal(ids, word, sizeof word);
    for (int k = 0; k < 77; k++)
        assert_int_equal(mask[k], 1);
    /* e, then U+0316 (class 220) and U+0301 (class 230) alternating: NFC moves every U+0316
     * first and composes e + U+0301 into e-acute (4166); the marks' bytes are 136 and 244 */
    s[0] = 'e';
    for (size_t i = 0; i < (n - 1) / 2; i++) {
        s[1 + 2 * i] = (char)0xCC;
        s[2 + 2 * i] = (char)(i % 2 ? 0x81 : 0x96);
    }
    assert_status(ldm_clip_tokenize(t, s, n - 1, 77, 1, ids, mask, &count), LDM_OK);
    assert_int_equal(count, 77);
    assert_true(ids[0] == 49406 && ids[1] == 4166 && ids[76] == 49407);
    for (int k = 2; k < 76; k++)
        assert_int_equal(ids[k], k % 2 ? 244 : 136);
    /* a short max_length keeps the start of the same text */
    assert_status(ldm_clip_tokenize(t, s, n - 1, 5, 0, ids, NULL, &count), LDM_OK);
    assert_int_equal(count, 5);
    const int32_t head[5] = {49406, 4166, 136, 244, 49407};
    assert_memory_equal(ids, head, sizeof head);
    /* counted whole: what a max_length of the count plus 2 keeps entirely, and one less cuts */
    int whole = 0;
    assert_status(ldm_clip_token_count(t, "a photo of a cat", 16, &whole), LDM_OK);
    assert_int_equal(whole, 5);
    assert_status(ldm_clip_token_count(t, s, n - 1, &whole), LDM_OK);
    assert_true(whole > 75);
    int32_t *all = malloc(((size_t)whole + 3) * sizeof *all);
    assert_non_null(all);
    assert_status(ldm_clip_tokenize(t, s, n - 1, whole + 3, 0, all, NULL, &count), LDM_OK);
    assert_int_equal(count, whole + 2); /* room for one more, and none came */
    assert_true(all[whole + 1] == 49407 && all[whole] != 49407);
    assert_memory_equal(all, head, 4 * sizeof *all); /* the same start as the short one */
    free(all);
    /* beyond the limit: refused, with both sizes */
    memset(s, 'a', n + 1);
    assert_status(ldm_clip_token_count(t, s, n + 1, &whole), LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(), "the tokenizer takes at most 65536: shorten it");
    assert_status(ldm_clip_tokenize(t, s, n + 1, 77, 1, ids, mask, &count),
                  LDM_ERR_INVALID_ARGUMENT);
    assert_contains(ldm_last_error(),
                    "the prompt is 65537 bytes; the tokenizer takes at most 65536");
    assert_int_equal(count, 0);
    free(s);
    ldm_clip_tokenizer_destroy(t);
}

static void write(const char *dir, const char *name, const char *content) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    test_write_file(path, content, strlen(content));
}

static void small_folder_and_errors(void **state) {
    (void)state;
    char *dir = test_make_tmpdir("tok");
    write(dir, "vocab.json",
          "{\"a\": 0, \"b\": 1, \"c\": 2, \"a</w>\": 3, \"b</w>\": 4, \"c</w>\": 5, \"ab\": 6, "
          "\"abc</w>\": 7, \"!</w>\": 8, \"<|startoftext|>\": 9, \"<|endoftext|>\": 10, \"!\": 11, "
          "\"ab</w>\": 12}");
    write(dir, "merges.txt", "#version: 0.2\na b\nab c</w>\nab b</w>\n");
    write(dir, "tokenizer_config.json", "{\"pad_token\": {\"content\": \"!\", \"lstrip\": false}}");
    ldm_clip_tokenizer *t;
    assert_status(ldm_clip_tokenizer_load_dir(dir, &t), LDM_OK);
    assert_int_equal(ldm_clip_tokenizer_pad(t), 11);
    int32_t ids[8], mask[8];
    int n;
    /* "abc" -> a b c</w> -> ab c</w> -> abc</w>; "ab" -> a b</w> (no merge "a b</w>") */
    assert_status(ldm_clip_tokenize(t, "ABC ab!", 7, 8, 1, ids, mask, &n), LDM_OK);
    const int32_t want[8] = {9, 7, 0, 4, 8, 10, 11, 11};
    const int32_t want_mask[8] = {1, 1, 1, 1, 1, 1, 0, 0};
    assert_int_equal(n, 8);
    assert_memory_equal(ids, want, sizeof want);
    assert_memory_equal(mask, want_mask, sizeof want_mask);
    /* Truncation keeps the end token; no padding when not asked. */
    assert_status(ldm_clip_tokenize(t, "abc abc abc", 11, 3, 0, ids, NULL, &n), LDM_OK);
    assert_int_equal(n, 3);
    assert_true(ids[0] == 9 && ids[1] == 7 && ids[2] == 10);
    /* Invalid UTF-8: the byte offset of the first bad sequence. */
    assert_status(ldm_clip_tokenize(t, "ab\xc3(", 4, 8, 1, ids, mask, &n), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "not valid UTF-8: byte 0xC3 at byte offset 2");
    assert_status(ldm_clip_tokenize(t, "\xed\xa0\x80", 3, 8, 1, ids, mask, &n), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "byte offset 0"); /* an encoded surrogate */
    ldm_clip_tokenizer_destroy(t);

    char path[4200];
    write(dir, "merges.txt", "#version: 0.2\na b\nab c</w> extra\n");
    assert_status(ldm_clip_tokenizer_load_dir(dir, &t), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "merges.txt line 3: a merge must be two symbols");
    write(dir, "merges.txt", "#version: 0.2\na b\n");
    write(dir, "vocab.json", "{\"a\": 0, \"b\": 1}");
    assert_status(ldm_clip_tokenizer_load_dir(dir, &t), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "lacks <|startoftext|> or <|endoftext|>");
    write(dir, "vocab.json", "{\"a\": 0, \"b\": -1}");
    assert_status(ldm_clip_tokenizer_load_dir(dir, &t), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "the id of \"b\" must be an integer");
    write(dir, "vocab.json", "{\"a\": 0, \"a\": 1}");
    assert_status(ldm_clip_tokenizer_load_dir(dir, &t), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "vocab.json: not valid JSON");
    snprintf(path, sizeof path, "%s/none", dir);
    assert_status(ldm_clip_tokenizer_load_dir(path, &t), LDM_ERR_NOT_FOUND);
    assert_contains(ldm_last_error(), "cannot open the vocabulary");
    assert_status(ldm_clip_tokenizer_load_bpe(path, &t), LDM_ERR_NOT_FOUND);
    assert_contains(ldm_last_error(), "cannot open the BPE vocabulary");
    test_rmtree(dir);
    free(dir);
}

/* Files that are not a vocabulary are refused, naming the file (and the line), instead of loading
 * as a tokenizer of no merges that conditions on garbage: a NUL byte, random bytes, a header
 * without merges, a symbol that is not UTF-8 or not one of byte-level BPE's characters; in both
 * formats. */
static void refuses_files_that_are_not_a_vocabulary(void **state) {
    (void)state;
    char *dir = test_make_tmpdir("tokbad");
    char merges[4200], bpe[4200];
    snprintf(merges, sizeof merges, "%s/merges.txt", dir);
    snprintf(bpe, sizeof bpe, "%s/bpe.txt", dir);
    write(dir, "vocab.json",
          "{\"a\": 0, \"b\": 1, \"a</w>\": 2, \"b</w>\": 3, \"ab\": 4, \"<|startoftext|>\": 5, "
          "\"<|endoftext|>\": 6}");
    ldm_clip_tokenizer *t = NULL;
    /* a NUL byte: its offset and line, in either format */
    static const char with_nul[] = "#version: 0.2\na b\n\0a b</w>\n";
    test_write_file(merges, with_nul, sizeof with_nul - 1);
    assert_status(ldm_clip_tokenizer_load_dir(dir, &t), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "merges.txt' holds a NUL byte at byte offset 18 (line 3)");
    assert_null(t);
    test_write_file(bpe, with_nul, sizeof with_nul - 1);
    assert_status(ldm_clip_tokenizer_load_bpe(bpe, &t), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "bpe.txt' holds a NUL byte at byte offset 18");
    /* random bytes (no NUL among them) */
    unsigned char noise[4096];
    uint32_t x = 7;
    for (size_t i = 0; i < sizeof noise; i++) {
        x = x * 1103515245u + 12345u;
        noise[i] = (unsigned char)(x >> 16);
        if (!noise[i]) noise[i] = 1;
    }
    test_write_file(merges, noise, sizeof noise);
    assert_status(ldm_clip_tokenizer_load_dir(dir, &t), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "merges.txt line ");
    test_write_file(bpe, noise, sizeof noise);
    assert_status(ldm_clip_tokenizer_load_bpe(bpe, &t), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "bpe.txt line ");
    /* only a header: no merges */
    write(dir, "merges.txt", "#version: 0.2\n");
    assert_status(ldm_clip_tokenizer_load_dir(dir, &t), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "merges.txt holds no merges (1 line; the first is a header)");
    test_write_file(bpe, "junk", 4);
    assert_status(ldm_clip_tokenizer_load_bpe(bpe, &t), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "bpe.txt holds no merges");
    /* symbols: not UTF-8; a character byte-level BPE never writes (a CJK ideograph, a space
     * character's own code point) */
    write(dir, "merges.txt", "#version: 0.2\na b\na \xff\n");
    assert_status(ldm_clip_tokenizer_load_dir(dir, &t), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "merges.txt line 3: a merge symbol is not valid UTF-8 "
                                      "(byte 0xFF)");
    write(dir, "merges.txt", "#version: 0.2\na b\nab \xe4\xb8\xad</w>\n");
    assert_status(ldm_clip_tokenizer_load_dir(dir, &t), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "merges.txt line 3: the merge symbol \"\xe4\xb8\xad</w>\" "
                                      "holds U+4E2D");
    write(dir, "merges.txt", "#version: 0.2\na\x7f b\n");
    assert_status(ldm_clip_tokenizer_load_dir(dir, &t), LDM_ERR_FORMAT);
    assert_contains(ldm_last_error(), "line 2: the merge symbol \"a\x7f\" holds U+007F");
    /* OpenAI's format ending in a newline loads, as OpenAI's reader takes it */
    test_write_file(bpe, "#version: 0.2\na b</w>\n", 22);
    assert_status(ldm_clip_tokenizer_load_bpe(bpe, &t), LDM_OK);
    ldm_clip_tokenizer_destroy(t);
    /* the same merges in order load, and merge */
    write(dir, "merges.txt", "#version: 0.2\na b</w>\n");
    assert_status(ldm_clip_tokenizer_load_dir(dir, &t), LDM_OK);
    int32_t ids[4];
    int n;
    assert_status(ldm_clip_tokenize(t, "ab", 2, 4, 0, ids, NULL, &n), LDM_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ids[1], 6); /* "ab</w>" is not in this vocabulary: unknown, CLIP's eos */
    ldm_clip_tokenizer_destroy(t);
    test_rmtree(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(matches_hugging_face_on_the_corpus),
        cmocka_unit_test(prompts_encode_with_the_empty_prompt_after_them),
        cmocka_unit_test(small_folder_and_errors),
        cmocka_unit_test(long_words_give_the_same_ids),
        cmocka_unit_test(refuses_files_that_are_not_a_vocabulary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
