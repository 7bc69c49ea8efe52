/* hl_ui_assets: the dashboard's files, compiled in. The table is generated at build time
 * (cmake/hl_embed.cmake) from ui/ and Debian's Chart.js, so the binary serves them with no
 * files beside it and no network. */
#ifndef HL_UI_ASSETS_H
#define HL_UI_ASSETS_H

#include <stddef.h>

typedef struct hl_ui_asset {
    const char *name;            /* "app.js": served at /ui/app.js */
    const char *type;            /* its Content-Type */
    const unsigned char *data;
    size_t len;
} hl_ui_asset;

extern const hl_ui_asset hl_ui_assets[];
extern const size_t hl_ui_n_assets;

#endif
