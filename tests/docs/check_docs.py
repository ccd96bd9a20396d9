#!/usr/bin/env python3
"""Check the code blocks of the documentation.

Every fenced block names its language. A ```c block is a complete program
unless its info string says "fragment": each complete program is compiled
against the library (warnings as errors) and run, and must exit with 0.
The info string may give the program's arguments as args=A,B,...

  check_docs.py --cc CC --include DIR --lib LIBFILE [--no-http] FILE.md...
  check_docs.py ... --root DIR    (DIR/README.md and DIR/docs/*.md)
"""
import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile

FENCE = re.compile(r'^(```+|~~~+)(.*)$')


def blocks(path):
    """Yield (line, info, code) for each fenced block of @path."""
    with open(path, encoding='utf-8') as f:
        lines = f.read().split('\n')
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, info, start = m.group(1), m.group(2).strip(), i + 1
        i += 1
        while i < len(lines) and not lines[i].startswith(fence):
            i += 1
        if i == len(lines):
            raise SystemExit(f'{path}:{start}: block never closed')
        yield start, info, '\n'.join(lines[start:i]) + '\n'
        i += 1


def check_program(args, where, info, code, tmp, n):
    words = info.split()
    argv = []
    for w in words[1:]:
        if w.startswith('args='):
            argv = w[len('args='):].split(',')
    if args.no_http and 'sy_metrics_serve' in code:
        print(f'{where}: skipped (built without the HTTP endpoint)')
        return True
    src = os.path.join(tmp, f'block{n}.c')
    exe = os.path.join(tmp, f'block{n}')
    with open(src, 'w', encoding='utf-8') as f:
        f.write(code)
    libdir = os.path.dirname(os.path.abspath(args.lib))
    cmd = args.cc.split() + ['-Wall', '-Wextra', '-Werror', '-I', args.include,
                             src, '-o', exe, args.lib, f'-Wl,-rpath,{libdir}']
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        print(f'{where}: does not compile (mark it "c fragment" if it is '
              f'not a complete program):\n{r.stderr}')
        return False
    try:
        r = subprocess.run([exe] + argv, capture_output=True, text=True,
                           timeout=60)
    except subprocess.TimeoutExpired:
        print(f'{where}: still running after 60 s')
        return False
    if r.returncode:
        print(f'{where}: exited with {r.returncode}:\n{r.stdout}{r.stderr}')
        return False
    print(f'{where}: compiled and ran')
    return True


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--cc', required=True)
    p.add_argument('--include', required=True)
    p.add_argument('--lib', required=True)
    p.add_argument('--no-http', action='store_true')
    p.add_argument('--root')
    p.add_argument('files', nargs='*')
    args = p.parse_args()
    if args.root:
        args.files += [os.path.join(args.root, 'README.md')]
        args.files += sorted(glob.glob(os.path.join(args.root, 'docs', '*.md')))
    if not args.files:
        p.error('no files to check')
    ok, programs, n = True, 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        for path in args.files:
            for line, info, code in blocks(path):
                where = f'{os.path.basename(path)}:{line}'
                n += 1
                if not info:
                    print(f'{where}: a block without a language ("c", '
                          f'"c fragment", "sh", "text", ...)')
                    ok = False
                    continue
                words = info.split()
                if words[0] != 'c' or 'fragment' in words:
                    continue
                programs += 1
                ok = check_program(args, where, info, code, tmp, n) and ok
    print(f'{n} blocks, {programs} complete C programs')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
