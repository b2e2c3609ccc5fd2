/* interfaces/cli/cli_options.c: getopt_long over imcore-cli's few options. */
#include "cli_options.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "Usage: imcore-cli --user ID [options]\n"
    "\n"
    "An interactive client for imcore. Commands are read from standard input,\n"
    "one per line (type :help once connected); received messages are printed\n"
    "on standard output.\n"
    "\n"
    "Options:\n"
    "  --host ADDR         server address, numeric IPv4 or IPv6 (default 127.0.0.1)\n"
    "  --port N            server port (default 7000)\n"
    "  --user ID           user id to log in as (required): 1..32 of A-Z a-z 0-9 _ . -\n"
    "  --name TEXT         display name shown to others (default: the user id)\n"
    "  --password-file F   read the password from the first line of file F\n"
    "  --ask-password      ask for the password on the terminal\n"
    "                      (otherwise: $IMCORE_PASSWORD, if set; servers in\n"
    "                      accounts.mode open need none)\n"
    "  --register          create the account (with that password) at the first login\n"
    "  --log-level LEVEL   debug, info, warn or error (default warn)\n"
    "  --show-acks         print '* sent ID seq=N delivered=N' for each message sent\n"
    "  --stay              keep running after standard input ends, until SIGINT/SIGTERM\n"
    "  --tls               connect with TLS; the server's certificate is checked\n"
    "                      against the system's CAs and must name the host\n"
    "  --ca FILE           trust the CAs in FILE (PEM) instead of the system's\n"
    "  --servername NAME   the name the certificate must carry (and SNI), when\n"
    "                      --host is an address and the certificate names a host\n"
    "  --insecure          with --tls, do not check the certificate (warns)\n"
    "  --help              print this text and exit\n"
    "  --version           print the version and exit\n"
    "\n"
    "Exit status: 0 on a clean exit, 1 when the server refuses or replaces the\n"
    "session or the client fails, 2 on bad usage.\n";

/* The rule of imcore.proto's Login.user_id, checked here so a typo is a usage
 * error instead of a login refused after connecting. */
static bool valid_user_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 32 || s[0] == '.' || s[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-';
        if (!ok)
            return false;
    }
    return true;
}

static bool numeric_host(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static int usage_error(FILE *err, const char *fmt, const char *arg)
{
    fputs("imcore-cli: ", err);
    fprintf(err, fmt, arg);
    fputs("\nTry 'imcore-cli --help' for more information.\n", err);
    return CLI_OPTIONS_USAGE;
}

int cli_options_parse(int argc, char **argv, cli_options *o, FILE *out, FILE *err)
{
    enum { OPT_HOST = 256, OPT_PORT, OPT_USER, OPT_NAME, OPT_LOG, OPT_ACKS, OPT_STAY,
           OPT_TLS, OPT_CA, OPT_SERVERNAME, OPT_INSECURE, OPT_HELP, OPT_VERSION, OPT_PASSWORD_FILE, OPT_ASK_PASSWORD, OPT_REGISTER };
    static const struct option longopts[] = {
        { "host", required_argument, NULL, OPT_HOST },
        { "port", required_argument, NULL, OPT_PORT },
        { "user", required_argument, NULL, OPT_USER },
        { "name", required_argument, NULL, OPT_NAME },
        { "log-level", required_argument, NULL, OPT_LOG },
        { "show-acks", no_argument, NULL, OPT_ACKS },
        { "stay", no_argument, NULL, OPT_STAY },
        { "password-file", required_argument, NULL, OPT_PASSWORD_FILE },
        { "ask-password", no_argument, NULL, OPT_ASK_PASSWORD },
        { "register", no_argument, NULL, OPT_REGISTER },
        { "tls", no_argument, NULL, OPT_TLS },
        { "ca", required_argument, NULL, OPT_CA },
        { "servername", required_argument, NULL, OPT_SERVERNAME },
        { "insecure", no_argument, NULL, OPT_INSECURE },
        { "help", no_argument, NULL, OPT_HELP },
        { "version", no_argument, NULL, OPT_VERSION },
        { NULL, 0, NULL, 0 },
    };

    *o = (cli_options){ .host = "127.0.0.1", .port = 7000, .user = NULL, .name = "",
                        .log_level = IM_LOG_WARN };
    opterr = 0; /* our own messages, on err */
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        switch (ch) {
        case OPT_HOST:
            if (!numeric_host(optarg))
                return usage_error(err, "--host %s: not a numeric IPv4 or IPv6 address", optarg);
            o->host = optarg;
            break;
        case OPT_PORT: {
            char *end = NULL;
            long v = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || v < 1 || v > 65535)
                return usage_error(err, "--port %s: not a port number (1..65535)", optarg);
            o->port = (uint16_t)v;
            break;
        }
        case OPT_USER:
            if (!valid_user_id(optarg))
                return usage_error(err, "--user %s: a user id is 1..32 of A-Z a-z 0-9 _ . - "
                                        "and does not start with . or -", optarg);
            o->user = optarg;
            break;
        case OPT_NAME:
            if (strlen(optarg) > 64)
                return usage_error(err, "--name %s: at most 64 bytes", optarg);
            o->name = optarg;
            break;
        case OPT_LOG:
            if (im_log_level_parse(optarg, &o->log_level) != 0)
                return usage_error(err, "--log-level %s: use debug, info, warn or error", optarg);
            break;
        case OPT_ACKS:
            o->show_acks = true;
            break;
        case OPT_STAY:
            o->stay = true;
            break;
        case OPT_PASSWORD_FILE:
            o->password_file = optarg;
            break;
        case OPT_ASK_PASSWORD:
            o->ask_password = true;
            break;
        case OPT_REGISTER:
            o->register_account = true;
            break;
        case OPT_TLS:
            o->tls = true;
            break;
        case OPT_CA:
            o->ca_file = optarg;
            break;
        case OPT_SERVERNAME:
            if (!optarg[0] || strlen(optarg) > 253)
                return usage_error(err, "--servername %s: 1 to 253 bytes", optarg);
            o->servername = optarg;
            break;
        case OPT_INSECURE:
            o->insecure = true;
            break;
        case OPT_HELP:
            fputs(usage_text, out);
            fflush(out);
            return CLI_OPTIONS_EXIT;
        case OPT_VERSION:
            fprintf(out, "imcore-cli %s\n", IMCORE_CLI_VERSION);
            fflush(out);
            return CLI_OPTIONS_EXIT;
        case ':':
            return usage_error(err, "%s needs a value", argv[optind - 1]);
        default:
            return usage_error(err, "unknown option %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error(err, "unexpected argument %s", argv[optind]);
    if (o->user == NULL)
        return usage_error(err, "%s", "--user is required");
    if (!o->tls && (o->ca_file || o->servername || o->insecure))
        return usage_error(err, "%s", "--ca, --servername and --insecure need --tls");
    if (o->insecure && (o->ca_file || o->servername))
        return usage_error(err, "%s", "--insecure checks nothing: drop --ca and --servername");
    if (o->password_file && o->ask_password)
        return usage_error(err, "%s", "--password-file and --ask-password exclude each other");
    return CLI_OPTIONS_RUN;
}
