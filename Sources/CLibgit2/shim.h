#include <git2.h>

/* git_libgit2_opts is variadic, which Swift cannot call: one wrapper per option used. */

/* Whether libgit2 re-hashes every object it reads to check its id (libgit2's default: on;
 * git itself checks ids when objects arrive, by fetch or index-pack, not on every read). */
static inline int rolloutctl_git_set_strict_hash_verification(int enabled) {
    return git_libgit2_opts(GIT_OPT_ENABLE_STRICT_HASH_VERIFICATION, enabled);
}

/* The object cache: whether objects are kept at all. */
static inline int rolloutctl_git_enable_caching(int enabled) {
    return git_libgit2_opts(GIT_OPT_ENABLE_CACHING, enabled);
}

/* The in-memory object database `plan --base` merges into (SPEC §6.1): the repository is never written. */
#include <git2/sys/mempack.h>
