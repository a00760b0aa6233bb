/* test_score.c — response scoring with known answers (tuna_score.h). */
#include "check.h"
#include "tuna.h"
#include "tuna_score.h"

int main(void) {
    /* whitespace normalisation, exact match, containment */
    char *n = tuna_score_normalize("  a\t b\n\nc  ");
    CHECK(n && !strcmp(n, "a b c"));
    free(n);
    CHECK(tuna_score_exact("Paris\n", "  Paris"));
    CHECK(tuna_score_exact("New\tYork  City", "New York City"));
    CHECK(!tuna_score_exact("Paris.", "Paris"));
    CHECK(!tuna_score_exact("paris", "Paris"));
    CHECK(tuna_score_contains("The answer is  42, surely.", "is 42"));
    CHECK(!tuna_score_contains("The answer is 41", "42"));
    /* regex */
    CHECK(tuna_score_regex("order #1234 shipped", "#\\d{4}\\b") == 1);
    CHECK(tuna_score_regex("order #12 shipped", "#\\d{4}\\b") == 0);
    CHECK(tuna_score_regex("x", "(unclosed") < 0 && strstr(tuna_last_error(), "(unclosed"));
    /* JSON validity */
    CHECK(tuna_score_json_valid("{\"a\": 1}"));
    CHECK(tuna_score_json_valid("  [1, 2, 3]\n"));
    CHECK(!tuna_score_json_valid("{\"a\": 1,}"));
    CHECK(!tuna_score_json_valid("{\"a\": 1"));
    CHECK(!tuna_score_json_valid("the answer"));
    CHECK(!tuna_score_json_valid(""));
    CHECK(!tuna_score_json_valid("42"));
    CHECK(!tuna_score_json_valid("{\"a\":1}{\"b\":2}"));
    /* JSON field accuracy */
    int c, t;
    const char *ref = "{\"name\": \"Ada\", \"age\": 36, \"tags\": [\"math\"], \"addr\": {\"city\": \"London\"}}";
    CHECK(tuna_score_json_fields("{\"addr\":{\"city\":\"London\"},\"tags\":[\"math\"],\"age\":36.0,\"name\":\"Ada\"}", ref, &c, &t) == TUNA_OK &&
          c == 4 && t == 4);
    CHECK(tuna_score_json_fields("{\"name\": \"Ada\", \"age\": \"36\", \"tags\": [\"math\", \"x\"]}", ref, &c, &t) == TUNA_OK && c == 1 &&
          t == 4);
    CHECK(tuna_score_json_fields("{\"name\": \"Ada\", \"age\": 36, \"addr\": {\"city\": \"Paris\"}}", ref, &c, &t) == TUNA_OK && c == 2);
    CHECK(tuna_score_json_fields("{\"name\": \"Ada\", ", ref, &c, &t) == TUNA_OK && c == 0 && t == 4);
    CHECK(tuna_score_json_fields("[\"Ada\"]", ref, &c, &t) == TUNA_OK && c == 0 && t == 4);
    CHECK(tuna_score_json_fields("{}", "[1]", &c, &t) == TUNA_ERR_FORMAT);
    CHECK(tuna_score_json_fields("{}", "not json", &c, &t) == TUNA_ERR_FORMAT);
    /* ROUGE-L: LCS("the cat sat on the mat", "the cat on the mat") = 5: P = 5/6, R = 5/5 */
    double want = 2 * (5.0 / 6) * 1.0 / (5.0 / 6 + 1.0);
    CHECKF(fabs(tuna_score_rouge_l("the cat sat on the mat", "the cat on the mat") - want) < 1e-12, "rouge-l %.12f",
           tuna_score_rouge_l("the cat sat on the mat", "the cat on the mat"));
    CHECK(tuna_score_rouge_l("The Cat!", "the cat") == 1.0);
    CHECK(tuna_score_rouge_l("abc", "xyz") == 0.0);
    CHECK(tuna_score_rouge_l("", "the cat") == 0.0);
    CHECK(tuna_score_rouge_l("...", "...") == 0.0);
    /* "a b c d" vs "d c b a": LCS 1 -> P = R = 1/4 */
    CHECK(fabs(tuna_score_rouge_l("a b c d", "d c b a") - 0.25) < 1e-12);
    return test_done();
}
