/*
 * peer-credentials: a tiny Node-API addon that reads SO_PEERCRED from a connected unix socket.
 *
 * The daemon accepts gRPC on a unix socket that every local user may connect to, so it must know
 * who is on the other end. Node has no API for peer credentials. The identity must come from the
 * kernel, which records it when the connection is made; it must never be looked up later from the
 * pid (the process may have exited and the pid been reused, or it may have changed its ids since).
 *
 * Exports getPeerCredentials(fd) -> { pid, uid, gid }. Throws an Error with `code` set to the
 * errno name when getsockopt fails, ERR_NOT_UNIX_SOCKET for another kind of socket (the kernel
 * would answer with uid -1 rather than fail) and ENOTCONN when the socket has no peer.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <node_api.h>

/* The errors getsockopt(2) documents; anything else keeps only its message. */
static const char *errno_name(int err) {
  switch (err) {
    case EBADF: return "EBADF";
    case EFAULT: return "EFAULT";
    case EINVAL: return "EINVAL";
    case ENOPROTOOPT: return "ENOPROTOOPT";
    case ENOTSOCK: return "ENOTSOCK";
    default: return NULL;
  }
}

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[128];
  snprintf(msg, sizeof msg, "getsockopt(%s): %s", what, strerror(err));
  napi_throw_error(env, errno_name(err), msg);
  return NULL;
}

static napi_value get_peer_credentials(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  double number;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 1 || napi_get_value_double(env, argv[0], &number) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "getPeerCredentials: fd must be a number");
    return NULL;
  }
  if (!(number >= 0 && number <= INT_MAX) || number != (double)(int)number) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "getPeerCredentials: fd must be a non-negative integer");
    return NULL;
  }
  int fd = (int)number;

  int domain;
  socklen_t len = sizeof domain;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) return throw_errno(env, "SO_DOMAIN", errno);
  if (domain != AF_UNIX) {
    napi_throw_error(env, "ERR_NOT_UNIX_SOCKET", "getPeerCredentials: not a unix socket");
    return NULL;
  }

  struct ucred cred;
  len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return throw_errno(env, "SO_PEERCRED", errno);
  /* The kernel reports uid/gid -1 and pid 0 for a socket that never had a peer. */
  if (cred.uid == (uid_t)-1 || cred.gid == (gid_t)-1) {
    napi_throw_error(env, "ENOTCONN", "getPeerCredentials: the socket has no peer credentials");
    return NULL;
  }

  napi_value result, pid, uid, gid;
  if (napi_create_object(env, &result) != napi_ok || napi_create_int32(env, cred.pid, &pid) != napi_ok ||
      napi_create_uint32(env, cred.uid, &uid) != napi_ok || napi_create_uint32(env, cred.gid, &gid) != napi_ok ||
      napi_set_named_property(env, result, "pid", pid) != napi_ok ||
      napi_set_named_property(env, result, "uid", uid) != napi_ok ||
      napi_set_named_property(env, result, "gid", gid) != napi_ok)
    return NULL;
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "getPeerCredentials", NAPI_AUTO_LENGTH, get_peer_credentials, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "getPeerCredentials", fn) != napi_ok)
    return NULL;
  return exports;
}
