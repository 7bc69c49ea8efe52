/* Fuzz target: an admin API body (POST /admin/keys, PATCH /admin/keys/{id}) through
 * hl_admin_parse_key, as a create and as a change. Must never crash, leak or read out of
 * bounds; an accepted key must pass hl_keys_check and render as JSON, and a refusal must name
 * a field (or the body) and say why. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "hl_admin.h"
#include "hl_keys.h"

static void one(const char *data, size_t size, bool create) {
    hl_key_record r;
    hl_store_key d = {.name = "existing", .prefix = "hl-00000000", .hash = "", .tenant = "t", .models = "m1,m2",
                      .cloud_allowed = true, .budget_day_usd = 1, .budget_month_usd = -1, .rpm = 5};
    hl_key_record_set(&r, &d);
    char param[64], msg[256];
    if (hl_admin_parse_key(data, size, create, &r, param, sizeof param, msg, sizeof msg) == HL_OK) {
        char m2[200];
        if (hl_keys_check(&r.k, m2, sizeof m2)) abort();
        json_t *j = hl_keys_to_json(&r.k);
        if (!j) abort();
        json_decref(j);
    } else if (!msg[0] || strlen(param) >= sizeof param) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    one((const char *)data, size, true);
    one((const char *)data, size, false);
    return 0;
}
