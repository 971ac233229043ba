#ifndef PGCROND_TRUST_H
#define PGCROND_TRUST_H

/* Files are trusted like plugins: what pgcrond reads its instructions from (pgcrond.conf, the
 * job files, conf_dir, plugin_dir and the plugins) and where it keeps its state (state_dir)
 * must be changeable only by root or by the user pgcrond runs as. Otherwise another local
 * user could add an exec alert sink (a shell), a job, a plugin, or point a state file at the
 * daemon user's files. The rule is OpenSSH's StrictModes and sudo's: the file or directory
 * itself, and the directory holding a file, must be owned by root or that user and writable
 * by neither group nor others; every directory above, up to /, likewise, except that a
 * root-owned directory with the sticky bit (/tmp) may be writable by all, since there
 * nobody can rename or remove what another user owns. Pure logic over the file system: no
 * libevent, no libpq. */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Check PATH (a directory when IS_DIR) and the directories above it, for the user SELF
 * (usually geteuid()). Returns 0 when trusted; -ENOENT (and no message) when PATH does not
 * exist; -EPERM with the reason and the exact chmod/chown to run in ERR; another -errno
 * (with a message) when it cannot be examined. Messages name PATH as given and the
 * directories above it by their absolute path, like:
 *   "conf.d is writable by others (mode 0777); run chmod go-w conf.d"
 *   "directory /srv above conf.d is owned by uid 1000, neither root nor the user pgcrond
 *    runs as (uid 998); run chown root /srv" */
int trust_check(const char *path, bool is_dir, uid_t self, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* trust_check, walking PATH one name at a time from / on descriptors (each directory and
 * symbolic link checked on what was opened, every link of a chain, so the check cannot be
 * raced by swapping a name); trust_check is this without *OUT. On success *OUT is a
 * descriptor open for reading on the file that was checked (O_NONBLOCK, O_CLOEXEC; the
 * caller closes it), or -1 when PATH is a directory or not a regular file. */
int trust_open(const char *path, bool is_dir, uid_t self, int *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
