/*
 * A game in C on crosscast's SDK: an animation rendered into the host's slots and a 440 Hz
 * tone. Walked through in docs/integrate.md.
 *
 *   crosscast live -- ./game [SECONDS]             the host starts it (spawned mode)
 *   ./game --connect KEY_FILE APP USER [SECONDS]   it reaches `crosscast host --listen`
 *                                                  (named mode), reconnecting after restarts
 *
 * Build (after scripts/sdk.sh installed libcrosscast, or with -I/-L pointing at a build):
 *   cc -O2 -o game examples/c/game.c $(pkg-config --cflags --libs crosscast) -lm
 */
#define _POSIX_C_SOURCE 200809L
#include <crosscast.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FPS 30
#define RATE 48000
#define BLOCK 480 /* 10 ms of audio, within the protocol's 5-40 ms */
#define BAR 32    /* the moving bar's width in pixels */
#define TAU 6.283185307179586

static void sleep_until(uint64_t t_ns) {
    struct timespec ts = {(time_t)(t_ns / 1000000000u), (long)(t_ns % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {
    }
}

/* What the game exits with after a failed call: the host leaving with a goodbye is a normal
 * end; without one, CC_EXIT_HOST_LOST tells a supervisor to reconnect. */
static int exit_status(CcStatus st, const char *what) {
    if (st == CC_ERR_HOST_GONE) return 0;
    fprintf(stderr, "c-game: %s: %s\n", what, cc_last_error());
    return st == CC_ERR_HOST_LOST ? CC_EXIT_HOST_LOST : 1;
}

/* Frame n: dark blue, with a white bar that moves 8 pixels a frame (top row first, RGBA). */
static void draw(uint8_t *px, uint32_t w, uint32_t h, uint32_t stride, uint64_t n) {
    uint32_t bar = (uint32_t)((n * 8) % (w - BAR));
    for (uint32_t y = 0; y < h; y++) {
        uint8_t *row = px + (size_t)y * stride;
        for (uint32_t x = 0; x < w; x++) {
            int white = x >= bar && x < bar + BAR;
            row[4 * x + 0] = white ? 255 : 20;
            row[4 * x + 1] = white ? 255 : 30;
            row[4 * x + 2] = white ? 255 : 90;
            row[4 * x + 3] = 255;
        }
    }
}

int main(int argc, char **argv) {
    if (argc >= 5 && strcmp(argv[1], "--connect") == 0) {
        /* This process stays an unsandboxed supervisor; the game runs as its child, started
         * again (spawned mode, below) with the connection whenever the host restarts. */
        char *child[] = {argv[0], argc > 5 ? argv[5] : "0", NULL};
        CcStatus st = cc_supervise(CC_ABI_VERSION, argv[2], argv[3], argv[4],
                                   (const char *const *)child);
        if (st != CC_OK) fprintf(stderr, "c-game: supervise: %s\n", cc_last_error());
        return st == CC_OK ? 0 : 1;
    }
    double seconds = argc > 1 ? atof(argv[1]) : 0; /* 0: until the host ends the stream */
    CcGame *game = NULL;
    CcStatus st = cc_connect_spawned(CC_ABI_VERSION, CC_SANDBOX_STRICT, &game);
    if (st != CC_OK) return exit_status(st, "connect");
    st = cc_audio_start(game, RATE, 2, CC_AUDIO_F32);
    if (st != CC_OK) return exit_status(st, "audio");

    uint64_t t0 = cc_monotonic_ns(), audio_frames = 0, queued = 0, skipped = 0;
    float block[BLOCK * 2];
    int status = 0;
    for (uint64_t n = 0;; n++) {
        /* Frame n's time from n itself: adding a rounded period would drift from the audio. */
        uint64_t pts = t0 + n * 1000000000u / FPS;
        if (seconds > 0 && pts - t0 >= (uint64_t)(seconds * 1e9)) break;
        sleep_until(pts);
        /* Audio: every block whose first sample is due by now, stamped from its sample count. */
        while (t0 + audio_frames * 1000000000u / RATE <= pts) {
            for (int i = 0; i < BLOCK; i++) {
                double t = (double)(audio_frames + (uint64_t)i) / RATE;
                float v = (float)(0.25 * sin(TAU * 440.0 * t));
                block[2 * i] = block[2 * i + 1] = v;
            }
            st = cc_audio_send(game, block, BLOCK, t0 + audio_frames * 1000000000u / RATE);
            if (st != CC_OK) break;
            audio_frames += BLOCK;
        }
        if (st != CC_OK) { status = exit_status(st, "audio"); break; }
        CcFrame *frame = NULL;
        st = cc_dequeue(game, 100, &frame);
        if (st == CC_TIMEOUT) { skipped++; continue; } /* the host is behind: keep the pace */
        if (st != CC_OK) { status = exit_status(st, "dequeue"); break; }
        uint32_t w, h, stride;
        uint8_t *px = cc_frame_pixels(frame, &w, &h, &stride);
        draw(px, w, h, stride, n);
        st = cc_queue(game, frame, n + 1, pts);
        if (st != CC_OK) { status = exit_status(st, "queue"); break; }
        queued++;
    }
    printf("c-game: queued %llu frames, skipped %llu, audio %llu blocks\n",
           (unsigned long long)queued, (unsigned long long)skipped,
           (unsigned long long)(audio_frames / BLOCK));
    cc_close(game);
    return status;
}
