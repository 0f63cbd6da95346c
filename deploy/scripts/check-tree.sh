#!/usr/bin/env bash
# check-tree.sh [DIR]: fail when the git repository holding DIR (default: the
# current directory) tracks a build output or a large file:
#   - an executable binary: an ELF or Mach-O file, with or without the
#     executable bit;
#   - a file with the executable bit that is not a script starting with "#!";
#   - a file larger than 1 MiB.
# Files under any testdata/ directory are exempt (test fixtures). What is
# checked is what git tracks: the modes and sizes in the index (`git ls-files`),
# so `git rm --cached FILE` is enough to pass again.
set -euo pipefail
export LC_ALL=C

cd "${1:-.}"
cd "$(git rev-parse --show-toplevel)"

max_bytes=$((1024 * 1024))

modes=() hashes=() paths=()
while IFS= read -r -d '' entry; do
  meta=${entry%%$'\t'*}
  read -r mode hash _ <<<"$meta"
  modes+=("$mode") hashes+=("$hash") paths+=("${entry#*$'\t'}")
done < <(git ls-files -s -z)

sizes=()
if ((${#hashes[@]})); then
  mapfile -t sizes < <(printf '%s\n' "${hashes[@]}" | git cat-file --batch-check='%(objectsize)')
fi

# read_magic PATH HASH: sets magic to the first 4 bytes of the tracked file
# (its working copy, or the indexed blob when the working copy is gone).
read_magic() {
  magic=
  if [[ -f $1 && ! -L $1 ]]; then
    IFS= read -r -d '' -n 4 magic <"$1" || true
  else
    IFS= read -r -d '' -n 4 magic < <(git cat-file blob "$2" 2>/dev/null) || true
  fi
}

bad=() untrack=() unexec=()
for i in "${!paths[@]}"; do
  p=${paths[i]} mode=${modes[i]}
  case /$p in */testdata/*) continue ;; esac
  # Symbolic links (120000) and submodules (160000) have no content here.
  [[ $mode == 100644 || $mode == 100755 ]] || continue
  read_magic "$p" "${hashes[i]}"
  case $magic in
    $'\x7fELF') bad+=("$p: an ELF executable binary") untrack+=("$p") ;;
    $'\xfe\xed\xfa\xce' | $'\xfe\xed\xfa\xcf' | $'\xce\xfa\xed\xfe' | $'\xcf\xfa\xed\xfe')
      bad+=("$p: a Mach-O executable binary") untrack+=("$p") ;;
    *)
      if [[ $mode == 100755 && ${magic:0:2} != '#!' ]]; then
        bad+=("$p: has the executable bit but is not a script starting with #!") unexec+=("$p")
      fi ;;
  esac
  if ((${sizes[i]:-0} > max_bytes)); then
    bad+=("$p: ${sizes[i]} bytes, more than 1 MiB")
    if ((${#untrack[@]} == 0)) || [[ ${untrack[-1]} != "$p" ]]; then untrack+=("$p"); fi
  fi
done

((${#bad[@]} == 0)) && exit 0

{
  echo "check-tree: git tracks files that do not belong in the repository:"
  printf '  %s\n' "${bad[@]}"
  if ((${#untrack[@]})); then
    printf 'Stop tracking the binaries and large files (your copies stay):\n  git rm --cached --'
    printf ' %q' "${untrack[@]}"
    printf '\nand add an ignore rule for each to .gitignore so they are not added again.\n'
  fi
  if ((${#unexec[@]})); then
    printf 'Clear the executable bit (or start the file with a #! line if it is a script):\n  git update-index --chmod=-x --'
    printf ' %q' "${unexec[@]}"
    printf '\n'
  fi
  cat <<'EOF'
A build output belongs in an ignored directory (.gitignore has /bin/, *.test,
/simmatch-*, data/, ...); a large test fixture under a testdata/ directory; a
model or data set is fetched at build time (deploy/scripts/), not committed.
EOF
} >&2
exit 1
