#!/usr/bin/env python3
"""Check the DOM of the dashboard that headless Chromium dumped.

  check_dom.py page DOM EXPECT          what an operator must see
  check_dom.py all DOM EXPECT           a row for every route and server
  check_dom.py filter DOM EXPECT TEXT   rows for the names with TEXT only

EXPECT is the JSON the test wrote (rig_write_expectations()): the route and
server names, the server whose breaker is open, the one whose health probe
fails, and the names made of HTML markup. Each failed check prints a line;
the exit status is 1 if any failed.
"""
import json
import sys
from html.parser import HTMLParser

VOID = {'area', 'base', 'br', 'col', 'embed', 'hr', 'img', 'input', 'link',
        'meta', 'source', 'track', 'wbr'}


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag = tag
        self.attrs = dict(attrs)
        self.parent = parent
        self.children = []

    def text(self):
        return ''.join(c if isinstance(c, str) else c.text()
                       for c in self.children)

    def classes(self):
        return (self.attrs.get('class') or '').split()

    def walk(self):
        for c in self.children:
            if isinstance(c, Node):
                yield c
                yield from c.walk()

    def find(self, pred):
        return [n for n in self.walk() if pred(n)]

    def by_id(self, ident):
        found = self.find(lambda n: n.attrs.get('id') == ident)
        return found[0] if found else None


class Tree(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node('#document', [], None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not self.root and n.tag != tag:
            n = n.parent
        if n is not self.root:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.children.append(data)


failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
    return ok


def rows(doc, kind):
    return {n.attrs.get('data-name'): n for n in doc.find(
        lambda n: n.tag == 'tr' and n.attrs.get('data-kind') == kind)}


def cell(row, cls):
    found = row.find(lambda n: n.tag == 'td' and cls in n.classes())
    return found[0] if found else None


def number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def check_live(doc):
    body = doc.find(lambda n: n.tag == 'body')[0]
    check(body.attrs.get('data-state') == 'live',
          'the page is not live: data-state=%r, status %r' % (
              body.attrs.get('data-state'), doc.by_id('status').text()))
    samples = int(body.attrs.get('data-samples') or 0)
    check(samples >= 2, 'the page took %d samples, expected 2 or more'
          % samples)
    errors = doc.by_id('errors').text().strip()
    check(not errors, 'the page reported errors: %r' % errors)


def check_page(doc, exp):
    check_live(doc)
    routes = rows(doc, 'route')
    servers = rows(doc, 'server')
    for name in exp['routes']:
        check(name in routes, 'no row for route %r' % name)
    for name in exp['servers']:
        check(name in servers, 'no row for server %r' % name)

    rates = [number(cell(r, 'rate').attrs.get('data-value'))
             for r in routes.values() if cell(r, 'rate') is not None]
    check(any(x and x > 0 for x in rates),
          'no route shows a rate above 0: %r' % rates)
    orders = routes.get('orders')
    if check(orders is not None, 'no row for orders'):
        rate = number(cell(orders, 'rate').attrs.get('data-value'))
        check(rate and rate > 0, 'orders shows rate %r' % rate)

    payments = routes.get('payments')
    if check(payments is not None, 'no row for payments'):
        dead = number(cell(payments, 'dead-rate').attrs.get('data-value'))
        check(dead and dead > 0, 'payments shows %r dead letters a second'
              % dead)

    failing = servers.get(exp['open_server'])
    if check(failing is not None, 'no row for %s' % exp['open_server']):
        state = cell(failing, 'breaker').text().strip()
        check(state == 'open', '%s shows breaker %r, expected open'
              % (exp['open_server'], state))
        check('problem' in failing.classes(),
              '%s is not marked as a problem' % exp['open_server'])
    down = servers.get(exp['down_server'])
    if check(down is not None, 'no row for %s' % exp['down_server']):
        health = cell(down, 'health').text().strip()
        check(health == 'down', '%s shows health %r, expected down'
              % (exp['down_server'], health))
    chips = doc.by_id('breaker-chips').text()
    check('open 1' in chips, 'the breaker summary reads %r' % chips)

    counts = {n.attrs.get('data-reason'): int(n.attrs.get('data-count'))
              for n in doc.find(lambda n: 'reason' in n.classes())}
    check(sum(counts.values()) > 0, 'no dead letters shown: %r' % counts)
    check(counts.get('handler_failed', 0) > 0,
          'no handler_failed dead letters shown: %r' % counts)
    check(counts.get('circuit_open', 0) > 0,
          'no circuit_open dead letters shown: %r' % counts)
    newest = doc.find(lambda n: n.tag == 'tr' and 'dead-letter' in n.classes())
    check(len(newest) > 0, 'no dead letters listed')
    listed_routes = {n.find(lambda c: c.tag == 'td')[3].text()
                     for n in newest}
    check(listed_routes <= set(exp['routes']),
          'dead letters name unknown routes: %r' % listed_routes)

    inv = doc.by_id('invariant')
    check('holds' in inv.classes() and 'holds' in inv.text(),
          'the accounting invariant reads %r' % inv.text())
    accepted = doc.find(lambda n: n.attrs.get('data-field') == 'accepted')
    check(accepted and number(accepted[0].text().replace(',', '')) > 0,
          'nothing accepted shown')

    queues = doc.find(lambda n: n.attrs.get('data-worker') is not None)
    check(len(queues) == 2, '%d worker inboxes shown, expected 2'
          % len(queues))
    want = exp['thresholds']
    check(any(want), 'no inbox serves a route with backpressure: %r' % want)
    shown = [number(q.attrs.get('data-threshold')) for q in queues]
    check(shown == want, 'the inboxes show thresholds %r, expected %r'
          % (shown, want))
    marks = len(doc.find(lambda n: 'mark' in n.classes()))
    check(marks == sum(1 for t in want if t),
          '%d inboxes marked, expected %d' % (marks, sum(1 for t in want if t)))
    check(doc.find(lambda n: n.tag == 'path' and n.parent.attrs.get('id')
                   == 'chart-rate'), 'the rate chart has no line')
    check(doc.find(lambda n: n.tag == 'path' and n.parent.attrs.get('id')
                   == 'chart-latency'), 'the latency chart has no line')
    # The address chose the orders route's latency for the chart.
    chart = doc.by_id('chart-latency')
    check(chart.attrs.get('data-route') == 'orders',
          'the latency chart shows %r, expected orders'
          % chart.attrs.get('data-route'))
    if orders is not None:
        p99 = number(cell(orders, 'p99').attrs.get('data-value'))
        check(p99 and p99 > 0, 'orders shows p99 latency %r' % p99)
        check(cell(orders, 'p99').text().strip() not in ('', '\u2013'),
              'orders shows no p99 latency')

    # Names are text: markup in a name must not become elements.
    check(not doc.find(lambda n: n.tag in ('img', 'b')),
          'a name was parsed as markup')
    for key in ('markup_server', 'markup_route'):
        name = exp[key]
        found = doc.find(lambda n: n.tag == 'td' and n.text() == name)
        check(found, 'the name %r is not shown as text' % name)


def check_all(doc, exp):
    check_live(doc)
    routes = rows(doc, 'route')
    servers = rows(doc, 'server')
    check(set(routes) == set(exp['routes']),
          'route rows differ: %d shown, %d expected'
          % (len(routes), len(exp['routes'])))
    check(set(servers) == set(exp['servers']),
          'server rows differ: %d shown, %d expected'
          % (len(servers), len(exp['servers'])))
    note = doc.by_id('routes-count').text()
    check(note == '%d routes' % len(exp['routes']),
          'the routes heading reads %r' % note)


def check_filter(doc, exp, needle):
    check_live(doc)
    want_routes = {n for n in exp['routes'] if needle.lower() in n.lower()}
    want_servers = {n for n in exp['servers'] if needle.lower() in n.lower()}
    routes = set(rows(doc, 'route'))
    servers = set(rows(doc, 'server'))
    check(want_routes, 'the filter %r matches no route' % needle)
    check(routes == want_routes, 'filter %r shows routes %r, expected %r'
          % (needle, sorted(routes), sorted(want_routes)))
    check(servers == want_servers, 'filter %r shows servers %r, expected %r'
          % (needle, sorted(servers), sorted(want_servers)))
    note = doc.by_id('routes-count').text()
    want = '%d routes, %d shown' % (len(exp['routes']), len(want_routes))
    check(note == want, 'the routes heading reads %r, expected %r'
          % (note, want))
    box = doc.by_id('q')
    check(box is not None and box.attrs.get('type') == 'search',
          'no search box')


def main():
    mode, dom_path, exp_path = sys.argv[1:4]
    tree = Tree()
    with open(dom_path, encoding='utf-8') as f:
        tree.feed(f.read())
    with open(exp_path, encoding='utf-8') as f:
        exp = json.load(f)
    doc = tree.root
    if mode == 'page':
        check_page(doc, exp)
    elif mode == 'all':
        check_all(doc, exp)
    elif mode == 'filter':
        check_filter(doc, exp, sys.argv[4])
    else:
        sys.exit('unknown mode %r' % mode)
    for f in failures:
        print('check_dom: ' + f, file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == '__main__':
    main()
