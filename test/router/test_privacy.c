/* Tests for hl_privacy: what a whole request reports. Each value counts once per request,
 * wherever it appears: an Anthropic client's system blocks are both kept as blocks and
 * turned into the system message, and the address in a mailto: link is also the link's
 * text. Secrets make a request sensitive and are reported by type, never by value. */
#include <string.h>

#include "hl_anthropic.h"
#include "hl_openai.h"
#include "hl_privacy.h"
#include "hl_test.h"

static void decide_anthropic(const char *body, bool redact, hl_privacy_verdict *v, hl_chat_request *req) {
    hl_api_error e;
    hl_pii_detector *d = NULL;
    HL_REQUIRE(hl_pii_detector_new(&d, NULL, NULL, 0, NULL, 0) == HL_OK);
    hl_chat_request_init(req);
    HL_REQUIRE(hl_anthropic_parse_request(body, strlen(body), req, &e) == HL_OK);
    hl_privacy_decide(d, redact, req, v);
    hl_pii_detector_free(d);
}

HL_TEST(system_blocks_count_once) {
    hl_chat_request req;
    hl_privacy_verdict v;
    decide_anthropic("{\"model\":\"m\",\"max_tokens\":8,\"system\":[{\"type\":\"text\",\"text\":\"Escalate to "
                     "ana.lima@example.com\"}],\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                     false, &v, &req);
    HL_CHECK(v.sensitive && v.detected);
    HL_CHECK_STR_EQ(v.pii, "email:1");
    hl_chat_request_release(&req);
}

HL_TEST(mailto_link_and_text_count_once) {
    hl_chat_request req;
    hl_privacy_verdict v;
    decide_anthropic("{\"model\":\"m\",\"max_tokens\":8,\"messages\":[{\"role\":\"user\",\"content\":\"<a "
                     "href=\\\"mailto:bob@example.org\\\">bob@example.org</a> and again bob@example.org\"}]}",
                     false, &v, &req);
    HL_CHECK_STR_EQ(v.pii, "email:1");
    hl_chat_request_release(&req);
}

HL_TEST(secrets_are_sensitive_and_redacted_by_type) {
    hl_chat_request req;
    hl_privacy_verdict v;
    const char *body = "{\"model\":\"m\",\"max_tokens\":8,\"messages\":[{\"role\":\"user\",\"content\":\"my .env:\\n"
                       "OPENAI_API_KEY=sk-proj-A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6\\nDB_PASSWORD=Tr0ub4dor&3x\\n"
                       "DATABASE_URL=postgres://app:S3cure99@db.example:5432/app\"}]}";
    decide_anthropic(body, false, &v, &req);
    HL_CHECK(v.sensitive && v.detected);
    HL_CHECK_STR_EQ(v.pii, "openai_key:1,password_in_url:1,env_secret:1");
    HL_CHECK(strstr(v.pii, "sk-proj") == NULL);
    hl_chat_request_release(&req);

    decide_anthropic(body, true, &v, &req);
    HL_CHECK(!v.sensitive); /* redaction removed every value */
    HL_CHECK_STR_EQ(req.messages[0].text, "my .env:\nOPENAI_API_KEY=[OPENAI_KEY_1]\nDB_PASSWORD=[ENV_SECRET_1]\n"
                                          "DATABASE_URL=postgres://app:[PASSWORD_IN_URL_1]@db.example:5432/app");
    hl_chat_request_release(&req);
}

HL_TEST_MAIN()
