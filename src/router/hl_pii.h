/* hl_pii: the PII and secrets detector the router runs on every request's text (all message
 * text, the system prompt, tool arguments) before it picks a backend. A request in which it
 * finds anything is sensitive and is never sent to a backend marked cloud; the ledger records
 * the types found. The detector reports types and counts of distinct values, never the
 * values. hl_pii_redact()
 * instead replaces each value with a typed placeholder ("[EMAIL_1]") for the optional redact
 * mode.
 *
 * What counts. Recall matters more than precision (a miss leaks data to a cloud provider; a
 * false positive only keeps a request local), but false positives are not free, so every
 * rule below says where it draws the line. Every type but email needs a boundary: the
 * value is not glued to a letter, digit or '_' on either side, is not preceded by
 * "<alnum>." or "<digit>-" (it would be the tail of a dotted version or a dashed id), and
 * is not followed by '@', '.' and a letter or digit, or '-' and a letter. Emails are found
 * first, and an address's local part may swallow what would otherwise be another value
 * ("4155550100@txt.example.net" is one email, not a phone number).
 *
 *   email        local@domain. Local part: 1-64 of A-Z a-z 0-9 . _ + - (plus-addressing)
 *                and two-byte UTF-8 letters (é, ß, Cyrillic), but not CJK: in text without
 *                spaces that would swallow the sentence before the address.
 *                Domain: two or more labels of letters, digits, '-' or non-ASCII (IDN)
 *                bytes, ending after the last label that is a TLD (two or more ASCII
 *                letters, or "xn--" punycode; "joe@example.com.123" ends at ".com"); a TLD
 *                followed by non-ASCII text ends there ("joe@example.com谢谢"). The '@' may
 *                also be written "%40" (URL-encoded text in tool
 *                arguments), "＠" (full width), or obfuscated as "[at]", "(at)", "{at}" with
 *                optional spaces, dots then as "." or "[dot]"/"(dot)"/"{dot}". Not counted:
 *                bare " at " / " dot " (too common in prose), npm-style "pkg@1.2.3" (numeric
 *                TLD), Retina assets "icon@2x.png", scp/URL targets "git@host:path" (a ':'
 *                and a non-space right after the domain), domains starting with '-'. An
 *                apostrophe belongs to the local part ("o'brien@"), except leading ones
 *                (quotes: "'joe@x.com'"). Known misses: CJK local parts,
 *                Unicode TLDs, quoted local parts. Known false positive: Python matmul on
 *                attributes ("a@b.shape").
 *   phone        7-15 digits (E.164 caps at 15) in groups separated by single ' ', '-',
 *                '.', '/' or parentheses, counted when one of these holds:
 *                  - it starts with '+' and has 8-15 digits, any grouping ("+14155552671",
 *                    "+44 20 7946 0958", "+49 (0)30 123456");
 *                  - North American shape [1] NXX NXX XXXX with separators ("415-555-2671",
 *                    "(415) 555-2671", "1 415 555 2671", "415.555.2671");
 *                  - it starts with a trunk '0' ("020 7946 0958", "06 12 34 56 78",
 *                    "0044 20 7946 0958"), has 10-15 digits, at least one separator, one
 *                    kind of separator (parentheses aside), every group after the first of
 *                    2-8 digits (1-8 after "00" and a country code: "0033 6 12 34 56 78",
 *                    "00 31 6 1234 5678"), a first group that is not all zeros (but "00"),
 *                    and not every group starting with 0 (zero-padded lists: "001 002 003");
 *                  - Indian mobile shape: two groups of 5, the first digit 6-9 ("98765
 *                    43210");
 *                  - a phone word precedes it within 48 bytes ("phone", "tel", "mobile",
 *                    "cell", "call", "fax", "sms", "whatsapp", "handy", "text me", "reach
 *                    me", "ring me", "dial", "wa.me/", "tel:", 电话, 手机, 電話, 携帯, 전화)
 *                    and it is a bare run of 10-15 digits ("手机13800138000"), a grouping of
 *                    10-15 digits with one kind of separator that is not a date ("Tel
 *                    2024-01-05 10:30"), or a local "555-2671".
 *                Bare 10-15 digit runs without '+' or a phone word are NOT phones: they are
 *                far more often epoch timestamps, order ids and account numbers. Dates
 *                (8 digits), version numbers (1-digit groups), number lists ("100 200 300
 *                400": no trunk 0, not NANP) fall outside these shapes.
 *   ssn          US Social Security numbers AAA-GG-SSSS, separated by '-' or ' '
 *                consistently, or a bare 9-digit run when "ssn", "social security", "ss#"
 *                or "ss no" precedes it within 48 bytes. Invalid numbers are rejected:
 *                area 000, 666, 900-999; group 00; serial 0000.
 *   credit_card  13-19 digits, bare or grouped by one kind of separator (' ' or '-') with a
 *                first group of 4 ("4111 1111 1111 1111", Amex "3782 822463 10005"),
 *                a card-network prefix with a length that network issues (Visa 4: 13/16/
 *                19, Mastercard 51-55 and 2221-2720: 16, Amex 34/37: 15, Diners/JCB 30,
 *                35-39, Maestro/Discover/UnionPay 50, 56-69: 13-19) and a valid Luhn check
 *                digit. The prefix rule drops epoch-millisecond timestamps and "2024..."
 *                date stamps that happen to pass Luhn (1 in 10 do); JCB and Diners never
 *                issue 15 digits, so 15-digit IMEIs ("35...", Luhn-valid) are no card. A
 *                card-shaped run (3+ groups, the first of 4) that fails is skipped whole:
 *                its groups are no phone number. Published test numbers (4111..., 4242...)
 *                count: their shape is a real card's.
 *   iban         A known country code, 2 check digits and that country's exact length,
 *                bare or in groups of 4 separated by single spaces or dashes, letters in
 *                either case, passing the ISO 13616 mod-97 check. An IBAN-shaped value
 *                that fails the check is skipped whole (its digit groups are not offered
 *                to the card and phone rules).
 *   ipv4         Four dotted decimal octets 0-255 ("/24" CIDR, ":8080" port and "-" ranges
 *                may follow). Not counted: 0.x.x.x, loopback 127.x.x.x, 255.x.x.x
 *                (netmasks, broadcast) and the public DNS resolvers 8.8.8.8, 8.8.4.4,
 *                1.1.1.1, 1.0.0.1, 9.9.9.9, 149.112.112.112: these name no one and fill
 *                coding prompts. Private
 *                ranges (10/8, 172.16/12, 192.168/16) DO count: they map a company's
 *                network. A preceding "version", "ver", "v", "release", "build",
 *                "firmware", "fw" or "rev", or a "Product/" token ("Chrome/120.0.0.0"),
 *                marks a version number instead.
 *   ipv6         RFC 4291 text forms: 8 groups, or "::" compression, optionally ending in
 *                an IPv4 tail ("::ffff:192.0.2.1"); a "%zone" is left out of the value.
 *                A compressed form must contain a decimal digit and a group of 3-4 hex
 *                digits, which keeps C++/Rust paths ("Cafe::add") and Python slices
 *                ("a[1::2]") out. "::" and "::1" are not counted. Mail headers' "[IPv6:...]"
 *                literals count.
 *
 * National ids (each a type of its own). Values must stand alone (no word character, '@',
 * or '-'/'.' and a letter or digit glued on):
 *   uk_nino      two letters (not D F I Q U V first, not D F I O Q U V second, not BG GB
 *                KN NK NT TN ZZ), six digits (or three spaced pairs), A-D. No check digit;
 *                the suffix may be left out after "NINO"/"national insurance".
 *   es_dni       8 digits and the mod-23 check letter (DNI, "-" or " " allowed), or X/Y/Z, 7
 *                digits and the letter (NIE).
 *   nl_bsn       9 digits (or 4.2.3 dotted) passing the 11-proof, after "BSN",
 *                "burgerservicenummer" or "sofi" within 48 bytes.
 *   it_codice_fiscale  16 characters in the official pattern (omocodia letters allowed) with
 *                the right check letter.
 *   fr_nir       15 digits (bare or 1-2-2-2-3-3-2 spaced), sex 1/2, a valid month, and the
 *                key 97 - (first 13 mod 97). Corsican "2A"/"2B" departments are missed.
 *   de_steuer_id 11 digits (or 2-3-3-3), ISO 7064 mod 11,10 check digit and the digit-count
 *                rule (one digit twice or thrice), after "Steuer", "IdNr", "TIN" or "tax id".
 *
 * Secrets (each a type of its own; a secret is reported by type, never by value, and under
 * redact replaced by its placeholder):
 *   openai_key "sk-" (also "sk-proj-", "sk-svcacct-") and 20+ of [A-Za-z0-9_-] with letters
 *              and digits; anthropic_key "sk-ant-" and 20+; aws_access_key "AKIA"/"ASIA" and
 *              16 of [A-Z0-9]; aws_secret 40 of [A-Za-z0-9/+] (upper, lower and digits) right
 *              after an access key id on the same line or assigned to a name with "aws" or
 *              "secret_access"; github_token "ghp_ gho_ ghu_ ghs_ ghr_" and 30+ alphanumerics,
 *              "github_pat_" and 40+; gitlab_token "glpat-" and 20+; slack_token "xox[abposr]-"
 *              or "xapp-" and 10+ with digits, and hooks.slack.com/services/ URLs;
 *              stripe_key "sk_live_ sk_test_ rk_live_ rk_test_" and 16+, "whsec_";
 *              google_api_key "AIza" and 35; private_key a "-----BEGIN ... PRIVATE KEY-----"
 *              block to its END line (or to the end of the text when cut); jwt
 *              "eyJ<header>.<ey|ew payload>.<signature>".
 *   password_in_url  the password of scheme://user:password@host, and "Password=...;" or
 *              "Pwd=...;" in a connection string.
 *   env_secret NAME=value, NAME: value, "name": "value" where the name says password,
 *              passwd, pwd, pass, passphrase, secret, credential, token, api key, or a key
 *              qualified as private/access/auth/signing/encryption/master/client/license/
 *              service/app/webhook, or is "Authorization" (Bearer/Basic values). Not counted:
 *              names whose last part is a limit, count, length, url, path, name, id, type,
 *              ... ("TOKEN_LIMIT", "max_tokens", "PASSWORD_MIN_LENGTH"); values shorter than
 *              6 (passwords) or 8 characters; stand-ins ("${VAR}", "<your key>", "changeme",
 *              "your_api_key_here", "xxxx", "****", "password", "example"); after ':' without
 *              quotes, a value of letters only ("password: forgotten"). On a line of its own
 *              the value runs to the end of the line; in prose to punctuation.
 *   custom       Each configured PCRE2 pattern (compiled with UTF and JIT); every
 *                non-empty match counts, independently of the built-in types.
 *
 * Encodings. JSON escapes are gone by the time text gets here (the JSON parser undid them).
 * Every built-in rule reads a normalized view of the text, built once per scan: Unicode
 * spaces (U+00A0, U+2000-200A, U+202F, U+205F, U+3000) read as ' ', dashes and minus signs
 * (U+2010-2015, U+2212, U+FE63) as '-', full-width forms (U+FF01-U+FF5E: "４１１１", "＠") as
 * their ASCII twins, zero-width characters (U+200B-200F, U+2060-2064, U+FEFF, soft hyphen)
 * as nothing, and a line break inside a number (a digit, optionally a separator, the break,
 * optional '>' quote markers and spaces, a digit: "4111 1111\n> 1111 1111") as one space.
 * Redaction maps what it finds back to the original bytes. Other Unicode digits
 * (Arabic-Indic, Devanagari) are not read as digits. Percent-encoding is decoded for '@'
 * only ("%40"); a phone or card number is digits either way. Custom patterns see the raw
 * bytes.
 *
 * Failing closed. A custom pattern that hits PCRE2's match limit (pathological
 * backtracking) counts as one match of that pattern: the text is treated as sensitive
 * rather than waved through unchecked.
 *
 * Cost. One left-to-right pass for secrets and ids, one for the rest, each linear in the
 * text: a phone word is looked for once per text however many numbers follow, and a digit
 * run that only a phone word could make a phone is given up after its first two groups
 * (bench/router.sh prints µs per KiB on ordinary and adversarial text).
 *
 * Threads. A detector is immutable once created and may be shared by any number of threads;
 * scans keep their state on the stack (PCRE2's match data comes from an on-stack arena). A
 * scan allocates only the normalized view, and only for text that is not plain ASCII or that
 * wraps a number across lines (or that holds a secret or id, whose span is blanked in a copy);
 * if that allocation fails the raw bytes are scanned and the report says incomplete. */
#ifndef HL_PII_H
#define HL_PII_H

#include <stddef.h>
#include "hl_err.h"

typedef enum hl_pii_type {
    HL_PII_EMAIL,
    HL_PII_PHONE,
    HL_PII_SSN,
    HL_PII_CREDIT_CARD,
    HL_PII_IBAN,
    HL_PII_IPV4,
    HL_PII_IPV6,
    /* National identifiers (see "National ids" above). */
    HL_PII_UK_NINO,
    HL_PII_ES_DNI,
    HL_PII_NL_BSN,
    HL_PII_IT_CODICE_FISCALE,
    HL_PII_FR_NIR,
    HL_PII_DE_STEUER_ID,
    /* Secrets (see "Secrets" above). */
    HL_PII_OPENAI_KEY,
    HL_PII_ANTHROPIC_KEY,
    HL_PII_AWS_ACCESS_KEY,
    HL_PII_AWS_SECRET,
    HL_PII_GITHUB_TOKEN,
    HL_PII_GITLAB_TOKEN,
    HL_PII_SLACK_TOKEN,
    HL_PII_STRIPE_KEY,
    HL_PII_GOOGLE_API_KEY,
    HL_PII_PRIVATE_KEY,
    HL_PII_JWT,
    HL_PII_PASSWORD_IN_URL,
    HL_PII_ENV_SECRET,
    HL_PII_CUSTOM,
    HL_PII_NTYPES
} hl_pii_type;

#define HL_PII_MAX_CUSTOM 32 /* custom patterns per detector */
#define HL_PII_MAX_NAME 32   /* bytes in a custom pattern's name */

#define HL_PII_SEEN 256 /* distinct values a report remembers (see hl_pii_report) */

/* What a scan found: distinct values per type, never the values. Zero it before the first
 * scan (hl_pii_report r = {0};); scans add to it, so one report can cover all of a
 * request's texts, and a value seen again (in another message, in a mailto: link and its
 * text, in an Anthropic system block and the system message made from it) counts once. Two
 * occurrences are the same value when their letters and digits agree, case aside
 * ("415-555-2671" and "(415) 555 2671"). The report remembers HL_PII_SEEN value hashes;
 * past that, every occurrence counts (over-counting is the safe side). Counts saturate at
 * INT_MAX. incomplete: a scan could not allocate its normalized view and read the raw bytes
 * only (values hidden by Unicode separators or line wraps may be missed); callers treat
 * the text as sensitive. */
typedef struct hl_pii_report {
    int counts[HL_PII_NTYPES];     /* per type; counts[HL_PII_CUSTOM] is the sum of custom[] */
    int custom[HL_PII_MAX_CUSTOM]; /* per custom pattern, in the order given at creation */
    int total;                     /* sum of counts[] */
    int n_seen;
    unsigned long long seen[HL_PII_SEEN]; /* hashes of the values counted (never 0) */
    int incomplete;
} hl_pii_report;

typedef struct hl_pii_detector hl_pii_detector;

/* Creates a detector with the built-in types and n_custom custom patterns. patterns[i] is a
 * PCRE2 pattern (UTF), names[i] its name: 1-32 characters of [A-Za-z0-9_], unique; the name
 * appears in reports and, upper-cased, in placeholders ("employee_id" -> "[EMPLOYEE_ID_1]").
 * A pattern may not match any placeholder ("\\d+" matches "[EMAIL_1]"): redacted text could
 * then never come out clean. Both arrays are borrowed (copied or compiled). On failure
 * *out is NULL and errbuf (if errlen > 0) says which pattern failed and why, with PCRE2's
 * message and offset: HL_ERR_INVAL for a bad name or pattern, HL_ERR_LIMIT past
 * HL_PII_MAX_CUSTOM, HL_ERR_NOMEM. Caller frees with hl_pii_detector_free(). */
hl_err hl_pii_detector_new(hl_pii_detector **out, const char *const *patterns,
                           const char *const *names, size_t n_custom, char *errbuf,
                           size_t errlen);
void hl_pii_detector_free(hl_pii_detector *d);

/* Scans len bytes of text (borrowed; need not be NUL-terminated or valid UTF-8) and adds
 * what it finds to *report (NULL: discard). d may be NULL: built-in types only. Allocates
 * only its normalized view (freed before it returns); safe to call from many threads at
 * once. */
void hl_pii_scan(const hl_pii_detector *d, const char *text, size_t len, hl_pii_report *report);

/* Like hl_pii_scan(), and also produces a copy of text in which every detected value is
 * replaced by "[TYPE_n]": TYPE is the type's name upper-cased (EMAIL, PHONE, ..., UK_NINO,
 * OPENAI_KEY, ENV_SECRET, ...) or the custom pattern's upper-cased name; n counts distinct values of that type within this call
 * from 1, so the same value gets the same placeholder each time it appears. Where a custom
 * match overlaps another value, one placeholder (the earlier-starting value's type) covers
 * both.
 *
 * The output, scanned again, finds nothing. Replacing values can change how the text
 * around them reads (a shorter placeholder brings an "SSN" word within reach of a number
 * further on; a custom match cuts a token whose rest then reads as a phone number), so
 * redaction repeats on its own output, up to 4 passes, until a scan comes out clean; what
 * later passes find gets placeholders too but is not counted in the report.
 *
 * When nothing is found, *out is NULL, *out_len 0 and nothing is allocated: send the text
 * as it is. Otherwise *out is NUL-terminated and the caller frees it with free(). The report
 * is updated exactly as hl_pii_scan() would update it, also on error, so a caller that gives
 * up on redaction still knows the text is sensitive. HL_ERR_LIMIT when the text cannot be
 * made clean (a custom pattern hit PCRE2's match limit, or 4 passes were not enough),
 * HL_ERR_NOMEM. */
hl_err hl_pii_redact(const hl_pii_detector *d, const char *text, size_t len, char **out,
                     size_t *out_len, hl_pii_report *report);

/* "email", "phone", "ssn", "credit_card", "iban", "ipv4", "ipv6", "uk_nino", ...,
 * "env_secret", "custom" (the enum's names in lower case); "unknown" for anything else.
 * Static strings. */
const char *hl_pii_type_name(hl_pii_type t);
/* The name of custom pattern i, NULL when there is none. Borrowed from d. */
const char *hl_pii_custom_name(const hl_pii_detector *d, size_t i);

/* Writes the report as "email:2,credit_card:1" (types in enum order, zero counts left out,
 * "" when nothing was found) into buf. With a detector, custom matches are listed per
 * pattern as "custom.<name>:n"; without one, as "custom:n". HL_ERR_LIMIT when buf is too
 * small: buf then holds "" (a cut list would under-report). */
hl_err hl_pii_report_format(const hl_pii_report *r, const hl_pii_detector *d, char *buf,
                            size_t len);

#endif
