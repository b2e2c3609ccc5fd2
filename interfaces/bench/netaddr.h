/* interfaces/bench/netaddr.h: the bench's client sockets.
 *
 * On loopback, the ephemeral ports of one source address run out near
 * 28,000 connections to one server port (and sooner with TIME_WAIT left by
 * churn). So connection i is bound to source address 127.0.0.(2 + i % K)
 * with IP_BIND_ADDRESS_NO_PORT: the port is then chosen at connect() for the
 * full 4-tuple, and each source address brings its own ~28,000 ports. */
#ifndef BENCH_NETADDR_H
#define BENCH_NETADDR_H

#include <stdint.h>
#include <sys/socket.h>

/* Writes the source address of connection i into buf ("127.0.0.7"); returns
 * buf, or NULL when k is 0 (the kernel chooses). */
const char *bench_source_addr(unsigned k, uint32_t i, char *buf, size_t len);

/* Opens a non-blocking TCP socket of dst's family with TCP_NODELAY, bound
 * as above (k source addresses; with k 0 or an IPv6 dst it stays unbound),
 * ready for connect(). Returns the fd, or -1 with errno. */
int bench_socket_open(const struct sockaddr *dst, unsigned k, uint32_t i);

#endif
