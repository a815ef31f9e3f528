/*
 * A minimal crosscast game in C, written from docs/protocol.md alone: it connects to
 * `crosscast host --listen` in named mode, authenticates, renders stamped frames straight into
 * the host's slots at 50 fps and sends 10 ms blocks of a 48 kHz stereo tone, then says goodbye.
 * Needs only libc and pthreads (SHA-256, HMAC and CRC-32 are below), so any C compiler builds it:
 *
 *     cc -O2 -o minimal_game docs/examples/minimal_game.c -lpthread
 *     crosscast keygen game.key
 *     crosscast host --listen --key-file game.key --app-id demo --user-id me --verify &
 *     ./minimal_game game.key demo me 10
 *
 * It prints one summary line on stdout: `queued F frames, skipped S, released R, audio A blocks`.
 * crates/crosscast/tests/c_game.rs builds and runs it against the real host.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define die(...) (fprintf(stderr, "minimal_game: " __VA_ARGS__), fputc('\n', stderr), exit(1))

/* ---- SHA-256 (FIPS 180-4), HMAC-SHA256 (RFC 2104), CRC-32 (IEEE, as zlib) ---------------- */

typedef struct { uint32_t h[8]; uint8_t buf[64]; uint64_t len; } sha256_ctx;

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(sha256_ctx *c, const uint8_t *p) {
    uint32_t w[64], a, b, d, e, f, g, h, cc, t1, t2;
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = c->h[0]; b = c->h[1]; cc = c->h[2]; d = c->h[3]; e = c->h[4]; f = c->h[5]; g = c->h[6]; h = c->h[7];
    for (int i = 0; i < 64; i++) {
        t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
        t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & cc) ^ (b & cc));
        h = g; g = f; f = e; e = d + t1; d = cc; cc = b; b = a; a = t1 + t2;
    }
    c->h[0] += a; c->h[1] += b; c->h[2] += cc; c->h[3] += d;
    c->h[4] += e; c->h[5] += f; c->h[6] += g; c->h[7] += h;
}

static void sha256_init(sha256_ctx *c) {
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, iv, sizeof iv);
    c->len = 0;
}

static void sha256_update(sha256_ctx *c, const void *data, size_t n) {
    const uint8_t *p = data;
    while (n--) {
        c->buf[c->len++ % 64] = *p++;
        if (c->len % 64 == 0) sha256_block(c, c->buf);
    }
}

static void sha256_final(sha256_ctx *c, uint8_t out[32]) {
    uint64_t bits = c->len * 8;
    uint8_t pad = 0x80, zero = 0, len[8];
    sha256_update(c, &pad, 1);
    while (c->len % 64 != 56) sha256_update(c, &zero, 1);
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha256_update(c, len, 8);
    for (int i = 0; i < 32; i++) out[i] = (uint8_t)(c->h[i / 4] >> (24 - 8 * (i % 4)));
}

static void sha256(const void *data, size_t n, uint8_t out[32]) {
    sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, data, n);
    sha256_final(&c, out);
}

/* HMAC-SHA256 with a 32-byte key over the concatenation of up to three parts. */
static void hmac_sha256(const uint8_t key[32], const void *p1, size_t n1, const void *p2, size_t n2,
                        const void *p3, size_t n3, uint8_t out[32]) {
    uint8_t pad[64], inner[32];
    sha256_ctx c;
    memset(pad, 0x36, 64);
    for (int i = 0; i < 32; i++) pad[i] ^= key[i];
    sha256_init(&c);
    sha256_update(&c, pad, 64);
    sha256_update(&c, p1, n1);
    sha256_update(&c, p2, n2);
    sha256_update(&c, p3, n3);
    sha256_final(&c, inner);
    memset(pad, 0x5c, 64);
    for (int i = 0; i < 32; i++) pad[i] ^= key[i];
    sha256_init(&c);
    sha256_update(&c, pad, 64);
    sha256_update(&c, inner, 32);
    sha256_final(&c, out);
}

static uint32_t crc32_ieee(const uint8_t *p, size_t n) {
    static uint32_t table[256];
    if (!table[1])
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
    uint32_t c = 0xffffffff;
    while (n--) c = table[(c ^ *p++) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffff;
}

/* ---- the wire format: packed little-endian fields (protocol.md section 3) ---------------- */

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> 8 * i); }
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> 8 * i); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)get16(p) | (uint32_t)get16(p + 2) << 16; }
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }

enum { HELLO = 1, CHALLENGE, PROOF, WELCOME, SURFACE_CONFIG, FRAME_QUEUED, SLOT_RELEASED,
       AUDIO_CONFIG, AUDIO_BLOCK, RESIZE, GOODBYE, ERROR_MSG };
#define MAX_MESSAGE 32768

/* Writes the 6-byte header for a message of `type` with `body` bytes of fields; returns the
 * datagram length. */
static size_t header(uint8_t *m, uint8_t type, size_t body) {
    put32(m, (uint32_t)(body + 2));
    m[4] = 1; /* version */
    m[5] = type;
    return 6 + body;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int sock;

static void send_msg(const uint8_t *m, size_t n) {
    if (send(sock, m, n, MSG_NOSIGNAL) != (ssize_t)n) die("send: %s", strerror(errno));
}

/* Receives one datagram (and its fds, if `fds`); checks the framing; reports an Error message
 * from the host and exits. Returns the datagram length, 0 when the host closed. */
static size_t recv_msg(uint8_t *buf, int *fds, int *nfds) {
    char control[CMSG_SPACE(8 * sizeof(int))];
    struct iovec iov = {buf, MAX_MESSAGE};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                        .msg_controllen = sizeof control};
    ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    if (n < 0) die("recvmsg: %s", strerror(errno));
    if (nfds) *nfds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int got[8];
        memcpy(got, CMSG_DATA(c), (size_t)k * sizeof(int));
        for (int i = 0; i < k; i++) {
            if (fds && *nfds < 8) fds[(*nfds)++] = got[i];
            else close(got[i]);
        }
    }
    if (n == 0) return 0;
    if ((mh.msg_flags & MSG_TRUNC) || n < 6 || get32(buf) != (uint32_t)n - 4 || buf[4] != 1)
        die("malformed message from the host");
    if (buf[5] == ERROR_MSG) {
        uint16_t len = get16(buf + 8);
        die("the host refused: code %u: %.*s", get16(buf + 6), (int)len, (const char *)buf + 10);
    }
    return (size_t)n;
}

/* ---- slots (protocol.md sections 6 and 7) ------------------------------------------------ */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int game_owns[8];
static int slot_count;
static uint32_t config_id, width, height, stride;
static uint64_t slot_len;
static uint8_t *slots[8];
static int host_said_goodbye, host_gone;
static unsigned long released;

/* The socket reader: the game must keep reading, or the host cuts it off. */
static void *reader(void *unused) {
    static uint8_t buf[MAX_MESSAGE];
    (void)unused;
    for (;;) {
        size_t n = recv_msg(buf, NULL, NULL);
        pthread_mutex_lock(&lock);
        if (n == 0) {
            host_gone = 1;
        } else if (buf[5] == SLOT_RELEASED && n == 11) {
            if (get32(buf + 6) == config_id) {
                uint8_t s = buf[10];
                if (s >= slot_count || game_owns[s]) die("the host released slot %u, which it does not hold", s);
                game_owns[s] = 1;
                released++;
            }
        } else if (buf[5] == GOODBYE) {
            host_said_goodbye = 1;
        } else {
            die("unexpected message type %u", buf[5]);
        }
        int done = host_gone || host_said_goodbye;
        pthread_mutex_unlock(&lock);
        if (done) return NULL;
    }
}

int main(int argc, char **argv) {
    if (argc != 5) die("usage: minimal_game KEY_FILE APP_ID USER_ID SECONDS");
    uint8_t key[32], extra;
    FILE *f = fopen(argv[1], "rb");
    if (!f || fread(key, 1, 32, f) != 32 || fread(&extra, 1, 1, f) != 0) die("%s: not a 32-byte key", argv[1]);
    fclose(f);
    const char *app = argv[2], *user = argv[3];
    double seconds = atof(argv[4]);

    /* Named mode: the abstract socket "crosscast-" + hex(HMAC(key, label 0 app 0 user)). */
    uint8_t digest[32];
    char name[75] = "crosscast-";
    size_t la = strlen(app), lu = strlen(user);
    uint8_t *label_app = malloc(24 + la + 1);
    if (!label_app) die("out of memory");
    memcpy(label_app, "crosscast/1 socket name", 24); /* 23 characters and their NUL */
    memcpy(label_app + 24, app, la);
    label_app[24 + la] = 0;
    hmac_sha256(key, label_app, 24 + la + 1, user, lu, "", 0, digest);
    free(label_app);
    for (int i = 0; i < 32; i++) snprintf(name + 10 + 2 * i, 3, "%02x", digest[i]);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    memcpy(addr.sun_path + 1, name, 74); /* sun_path[0] = 0: abstract */
    sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (sock < 0) die("socket: %s", strerror(errno));
    if (connect(sock, (struct sockaddr *)&addr, offsetof(struct sockaddr_un, sun_path) + 1 + 74))
        die("connect to %s: %s", name, strerror(errno));

    /* Handshake (protocol.md section 5). The transcript is the four datagrams' bytes. */
    static uint8_t transcript[23 + 38 + 38], buf[MAX_MESSAGE];
    uint8_t *hello = transcript, *challenge = transcript + 23, *proof = transcript + 61;
    uint8_t hash[32], mac[32];
    header(hello, HELLO, 17);
    hello[6] = 1; /* role: game */
    if (getrandom(hello + 7, 16, 0) != 16) die("getrandom");
    send_msg(hello, 23);
    if (recv_msg(buf, NULL, NULL) != 38 || buf[5] != CHALLENGE) die("expected a Challenge");
    memcpy(challenge, buf, 38);
    sha256(transcript, 61, hash);
    header(proof, PROOF, 32);
    hmac_sha256(key, "crosscast/1 game proof", 22, hash, 32, "", 0, proof + 6);
    send_msg(proof, 38);
    if (recv_msg(buf, NULL, NULL) != 46 || buf[5] != WELCOME) die("expected a Welcome");
    sha256(transcript, 99, hash);
    hmac_sha256(key, "crosscast/1 host proof", 22, hash, 32, buf + 6, 8, mac);
    uint8_t diff = 0;
    for (int i = 0; i < 32; i++) diff |= (uint8_t)(mac[i] ^ buf[14 + i]);
    if (diff) die("the host's proof does not verify");

    /* The slots: check each memfd's seals and size, then map it. */
    int fds[8], nfds;
    if (recv_msg(buf, fds, &nfds) != 33 || buf[5] != SURFACE_CONFIG) die("expected a SurfaceConfig");
    config_id = get32(buf + 6);
    width = get32(buf + 10);
    height = get32(buf + 14);
    stride = get32(buf + 18);
    slot_count = buf[23];
    slot_len = get64(buf + 24);
    if (buf[22] != 1 || nfds != slot_count) die("unexpected pixel format or fd count");
    for (int i = 0; i < slot_count; i++) {
        struct stat st;
        int seals = fcntl(fds[i], F_GET_SEALS);
        if (fstat(fds[i], &st) || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != slot_len || seals < 0 ||
            !(seals & F_SEAL_SHRINK) || !(seals & F_SEAL_GROW) || (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)))
            die("slot %d is not a sealed memfd of %llu bytes", i, (unsigned long long)slot_len);
        slots[i] = mmap(NULL, slot_len, PROT_READ | PROT_WRITE, MAP_SHARED, fds[i], 0);
        if (slots[i] == MAP_FAILED) die("mmap: %s", strerror(errno));
        game_owns[i] = 1;
    }
    pthread_t thread;
    if (pthread_create(&thread, NULL, reader, NULL)) die("pthread_create");

    /* Audio: 48 kHz stereo f32 in 10 ms blocks, stamped with their first sample's time. */
    uint8_t audio_config[12];
    header(audio_config, AUDIO_CONFIG, 6);
    put32(audio_config + 6, 48000);
    audio_config[10] = 2;
    audio_config[11] = 2;
    send_msg(audio_config, 12);

    static uint8_t block[40 + 480 * 8];
    uint64_t t0 = now_ns(), seq = 0, audio_seq = 0, queued = 0, skipped = 0;
    for (uint64_t tick = 0;; tick++) {
        uint64_t due = t0 + tick * 10000000u; /* every 10 ms: one audio block, every other: a frame */
        pthread_mutex_lock(&lock);
        int stop = host_gone || host_said_goodbye;
        pthread_mutex_unlock(&lock);
        if (stop || (double)(due - t0) >= seconds * 1e9) break;
        for (uint64_t now = now_ns(); now < due; now = now_ns()) {
            struct timespec ts = {0, (long)(due - now)};
            nanosleep(&ts, NULL);
        }

        header(block, AUDIO_BLOCK, 34 + 480 * 8);
        put64(block + 6, audio_seq);
        put64(block + 14, due);
        put32(block + 30, 48000);
        block[34] = 2;
        block[35] = 2;
        put32(block + 36, 480 * 8);
        for (int i = 0; i < 480; i++) { /* a 375 Hz triangle, no libm needed */
            uint64_t n = audio_seq * 480 + (uint64_t)i;
            float phase = (float)(n % 128) / 128.0f;
            float v = 0.2f * (phase < 0.5f ? 4 * phase - 1 : 3 - 4 * phase);
            uint32_t bits;
            memcpy(&bits, &v, 4);
            put32(block + 40 + 8 * i, bits);
            put32(block + 44 + 8 * i, bits);
        }
        put64(block + 22, now_ns());
        send_msg(block, sizeof block);
        audio_seq++;
        if (tick % 2) continue;

        /* A frame at 50 fps: dequeue a slot the game owns, draw, stamp, queue. */
        seq++;
        int s = -1;
        pthread_mutex_lock(&lock);
        for (int i = 0; i < slot_count && s < 0; i++)
            if (game_owns[i]) s = i;
        if (s >= 0) game_owns[s] = 0;
        pthread_mutex_unlock(&lock);
        if (s < 0) { /* the host has not released one yet (fifo, or a loaded machine) */
            skipped++;
            continue;
        }
        uint8_t *px = slots[s];
        for (uint32_t y = 0; y < height; y++)
            for (uint32_t x = 0; x < width; x++) {
                uint8_t *p = px + (size_t)y * stride + 4 * (size_t)x;
                p[0] = (uint8_t)(x + seq), p[1] = (uint8_t)(y + seq), p[2] = 0x80, p[3] = 0xff;
            }
        size_t frame_len = (size_t)stride * height;
        put32(px + 8, crc32_ieee(px + 16, frame_len - 16));
        put64(px, seq);
        px[12] = px[13] = px[14] = 0xcc, px[15] = 0xff;
        uint8_t fq[35];
        header(fq, FRAME_QUEUED, 29);
        put32(fq + 6, config_id);
        fq[10] = (uint8_t)s;
        put64(fq + 11, seq);
        put64(fq + 19, due);
        put64(fq + 27, now_ns());
        send_msg(fq, 35);
        queued++;
    }
    pthread_mutex_lock(&lock);
    int said_goodbye = host_said_goodbye, gone = host_gone;
    unsigned long rel = released;
    pthread_mutex_unlock(&lock);
    printf("queued %llu frames, skipped %llu, released %lu, audio %llu blocks\n",
           (unsigned long long)queued, (unsigned long long)skipped, rel, (unsigned long long)audio_seq);
    fflush(stdout);
    if (gone && !said_goodbye) return 3; /* protocol.md section 12 */
    if (!said_goodbye) {
        uint8_t bye[8];
        header(bye, GOODBYE, 2);
        put16(bye + 6, 0);
        send_msg(bye, 8);
    }
    return 0;
}
