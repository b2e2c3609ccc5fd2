/* interfaces/cli/cli_secret.c: reads a password from a file, the terminal
 * or the environment. */
#include "cli_secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

void cli_secret_wipe(void *p, size_t n)
{
    explicit_bzero(p, n);
}

/* Keeps the first line of buf, without its end of line. */
static void first_line(char *buf)
{
    buf[strcspn(buf, "\r\n")] = '\0';
}

static int from_file(const char *file, char *out, char *why, size_t why_len)
{
    FILE *f = fopen(file, "re");
    if (!f) {
        snprintf(why, why_len, "--password-file %s: %s", file, strerror(errno));
        return -1;
    }
    char buf[CLI_SECRET_MAX + 2];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    int failed = ferror(f);
    fclose(f);
    buf[n] = '\0';
    first_line(buf);
    if (failed || strlen(buf) >= CLI_SECRET_MAX) {
        snprintf(why, why_len, "--password-file %s: %s", file,
                 failed ? "cannot read it" : "the password is too long");
        cli_secret_wipe(buf, sizeof buf);
        return -1;
    }
    memcpy(out, buf, strlen(buf) + 1);
    cli_secret_wipe(buf, sizeof buf);
    return 0;
}

static int from_terminal(const char *prompt, char *out, char *why, size_t why_len)
{
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, why_len, "--ask-password: no terminal to ask on (%s)", strerror(errno));
        return -1;
    }
    struct termios old, quiet;
    bool restore = tcgetattr(fd, &old) == 0;
    if (restore) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(fd, TCSAFLUSH, &quiet);
    }
    ssize_t w = write(fd, prompt, strlen(prompt));
    (void)w;
    char buf[CLI_SECRET_MAX + 2];
    size_t n = 0;
    for (;;) {
        char ch;
        ssize_t r = read(fd, &ch, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || ch == '\n' || ch == '\r')
            break;
        if (n < sizeof buf - 1)
            buf[n++] = ch;
    }
    buf[n] = '\0';
    if (restore)
        tcsetattr(fd, TCSAFLUSH, &old);
    w = write(fd, "\n", 1);
    close(fd);
    if (n >= CLI_SECRET_MAX) {
        snprintf(why, why_len, "--ask-password: the password is too long");
        cli_secret_wipe(buf, sizeof buf);
        return -1;
    }
    memcpy(out, buf, n + 1);
    cli_secret_wipe(buf, sizeof buf);
    return 0;
}

/* A new password is typed twice: a typo in an account's first password
 * would lock its owner out. */
static int from_terminal_twice(char *out, char *why, size_t why_len)
{
    char again[CLI_SECRET_MAX];
    int rc = from_terminal("New password: ", out, why, why_len);
    if (rc == 0)
        rc = from_terminal("Once more: ", again, why, why_len);
    if (rc == 0 && strcmp(out, again) != 0) {
        snprintf(why, why_len, "--register: the two passwords differ");
        rc = -1;
    }
    cli_secret_wipe(again, sizeof again);
    if (rc != 0)
        cli_secret_wipe(out, CLI_SECRET_MAX);
    return rc;
}

int cli_secret_read(const char *file, bool ask, bool confirm, char out[CLI_SECRET_MAX],
                    char *why, size_t why_len)
{
    out[0] = '\0';
    if (file)
        return from_file(file, out, why, why_len);
    if (ask && confirm)
        return from_terminal_twice(out, why, why_len);
    if (ask)
        return from_terminal("Password: ", out, why, why_len);
    const char *env = getenv("IMCORE_PASSWORD");
    if (env) {
        if (strlen(env) >= CLI_SECRET_MAX) {
            snprintf(why, why_len, "IMCORE_PASSWORD: the password is too long");
            return -1;
        }
        memcpy(out, env, strlen(env) + 1);
    }
    return 0;
}
