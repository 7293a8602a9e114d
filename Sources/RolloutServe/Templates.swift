import Mustache

/// The page templates. `{{name}}` is HTML-escaped by the template layer: every text that comes from a plan,
/// an approval, a commit or the audit log goes through it and nothing else builds markup from data.
/// `{{{…}}}` (unescaped) is never used. Charts are SVG elements written here from numbers (Chart).
enum Templates {
    static let library: MustacheLibrary = {
        var library = MustacheLibrary()
        do {
            try library.register(layout, named: "layout")
            try library.register(overview, named: "overview")
            try library.register(rollout, named: "rollout")
            try library.register(notFound, named: "not-found")
            try library.register(unavailable, named: "unavailable")
        } catch {
            preconditionFailure("a built-in template does not parse: \(error)")
        }
        return library
    }()

    static let layout = """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="color-scheme" content="light dark">
        <title>{{title}} · rolloutctl</title>
        <style>
        :root { --bg:#fbfbfd; --fg:#1c1d21; --muted:#5d6270; --card:#fff; --line:#dde0e6; --ok:#1a7f37;
          --warn:#9a6700; --bad:#c62828; --link:#0b57d0; --c0:#0b57d0; --c1:#c2410c; --c2:#15803d; --c3:#7e22ce;
          --c4:#be123c; --c5:#0e7490; }
        @media (prefers-color-scheme: dark) { :root { --bg:#111318; --fg:#e6e7ea; --muted:#a0a5b1; --card:#1a1d24;
          --line:#2c313c; --ok:#4ac26b; --warn:#d4a72c; --bad:#ff7b72; --link:#8ab4f8; --c0:#8ab4f8; --c1:#fb923c;
          --c2:#4ade80; --c3:#c084fc; --c4:#fb7185; --c5:#22d3ee; } }
        * { box-sizing: border-box; }
        body { margin:0; font:15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
          background:var(--bg); color:var(--fg); }
        header, main { max-width: 1100px; margin: 0 auto; padding: 12px 16px; }
        header { border-bottom: 1px solid var(--line); }
        header h1 { font-size: 20px; margin: 0 0 4px; } header p { margin: 0; color: var(--muted); font-size: 13px; }
        a { color: var(--link); }
        h2 { font-size: 18px; margin: 24px 0 8px; } h3 { font-size: 15px; margin: 16px 0 6px; }
        .cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(330px, 1fr)); gap: 12px; }
        .card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px;
          overflow-wrap: anywhere; }
        .card h2 { margin: 0 0 4px; font-size: 17px; }
        .muted { color: var(--muted); font-size: 13px; }
        .status { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600;
          border: 1px solid currentColor; }
        .status-progressing, .status-completed { color: var(--ok); }
        .status-holding, .status-blocked, .status-paused, .status-orphaned, .status-overridden { color: var(--warn); }
        .status-rolled-back, .status-aborted, .status-invalid { color: var(--bad); }
        .verdict-pass { color: var(--ok); } .verdict-breach { color: var(--bad); } .verdict-no-data { color: var(--warn); }
        table { border-collapse: collapse; width: 100%; font-size: 14px; }
        th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid var(--line); vertical-align: top; }
        th { color: var(--muted); font-weight: 600; font-size: 12px; }
        ul { margin: 4px 0; padding-left: 18px; }
        .blocker { color: var(--warn); } .error { color: var(--bad); }
        pre, code { font: 13px ui-monospace, SFMono-Regular, Menlo, monospace; }
        pre { background: var(--card); border: 1px solid var(--line); padding: 8px; overflow-x: auto; }
        .scroll { overflow-x: auto; }
        figure { margin: 0; }
        .panels { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 480px), 1fr)); gap: 12px; }
        svg.chart { width: 100%; height: auto; background: var(--card); border: 1px solid var(--line); border-radius: 6px; }
        svg.chart text { fill: var(--muted); font-size: 11px; } svg.chart .axis { stroke: var(--line); }
        svg.chart polyline { fill: none; stroke-width: 2; }
        svg.chart .episode { fill: var(--bad); opacity: .2; } svg.chart .threshold { stroke: var(--bad); stroke-dasharray: 5 3; }
        svg.chart .threshold-label { fill: var(--bad); }
        .s0 { stroke: var(--c0); color: var(--c0); } .s1 { stroke: var(--c1); color: var(--c1); }
        .s2 { stroke: var(--c2); color: var(--c2); }
        .s3 { stroke: var(--c3); color: var(--c3); } .s4 { stroke: var(--c4); color: var(--c4); }
        .s5 { stroke: var(--c5); color: var(--c5); }
        .legend { list-style: none; padding: 0; margin: 4px 0; font-size: 12px; }
        .legend li { display: inline-block; margin-right: 12px; }
        .legend li::before { content: "■ "; }
        table.rollouts td.phase, table.rollouts td.name, table.rollouts th { white-space: nowrap; }
        table.rollouts ul { list-style: none; padding: 0; } table.rollouts td { overflow-wrap: normal; }
        nav.filters a { margin-right: 6px; } nav.filters a[aria-current] { font-weight: 700; }
        @media (max-width: 600px) { body { font-size: 14px; } th, td { padding: 3px 4px; } }
        </style>
        </head>
        <body>
        <header><h1><a href="/">rolloutctl</a> · {{title}}</h1>
        <p>{{#revision}}revision <code>{{revision}}</code> of {{ref}} · {{/revision}}planned {{plannedAt}}
        {{#lastReconcile}} · last reconcile {{lastReconcile}}{{/lastReconcile}}
        {{^lastReconcile}}{{#lastStateWrite}} · last reconcile change {{lastStateWrite}}{{/lastStateWrite}}
        {{/lastReconcile}}
        </p></header>
        <main>
        {{$body}}{{/body}}
        </main>
        </body>
        </html>
        """

    static let overview = """
        {{<layout}}{{$body}}
        <p class="muted">{{count}} rollout{{^one}}s{{/one}} · {{summary}}</p>
        {{#policyErrors}}<p class="error">policy error: {{.}}</p>{{/policyErrors}}
        <nav class="filters" aria-label="filter by status">status:
        <a href="{{allHref}}" class="filter"{{#allSelected}} aria-current="page"{{/allSelected}}>all ({{count}})</a>
        {{#statusFilters}}<a href="{{href}}" class="filter status status-{{status}}" data-filter="{{status}}"
          {{#selected}} aria-current="page"{{/selected}}>{{status}} ({{count}})</a>
        {{/statusFilters}}</nav>
        <p class="muted">{{shown}} shown{{#statusFilter}}, status {{statusFilter}}{{/statusFilter}}, sorted by {{sort}}</p>
        <div class="scroll"><table class="rollouts">
        <thead><tr>{{#columns}}<th><a href="{{href}}" data-sort="{{key}}"{{#active}} aria-sort="ascending"{{/active}}>
        {{label}}{{#active}} ▲{{/active}}</a></th>{{/columns}}<th>coverage (desired / actual)</th><th>why not moving</th>
        </tr></thead>
        <tbody>
        {{#rollouts}}<tr class="rollout" id="rollout-{{name}}" data-status="{{status}}">
        <td class="name"><a href="/rollouts/{{name}}">{{name}}</a></td>
        <td><span class="status status-{{status}}">{{status}}</span></td>
        <td class="phase"><strong class="current-phase">{{currentPhase}}</strong>
        {{#nextPhase}}<br>→ <strong class="next-phase">{{nextPhase}}</strong>{{/nextPhase}}</td>
        <td><code>{{flag}}</code></td>
        <td>{{#hasCoverage}}<ul class="coverage">{{#coverage}}<li>{{environment}}
        <span class="desired">{{desired}}</span> / <span class="actual">{{actual}}</span></li>{{/coverage}}</ul>
        {{/hasCoverage}}</td>
        <td>{{#hasBlockers}}<ul class="blockers">{{#blockers}}
        <li class="blocker blocker-{{kind}}"{{#role}} data-role="{{role}}"{{/role}}>{{label}}: {{detail}}</li>{{/blockers}}
        </ul>{{/hasBlockers}}
        {{#hasTimeline}}<ul class="timeline">{{#timeline}}<li data-phase="{{phase}}">{{phase}}:
        <span class="earliest">{{earliest}}</span> ({{waiting}})</li>{{/timeline}}</ul>{{/hasTimeline}}
        {{#errors}}<p class="error">{{.}}</p>{{/errors}}</td>
        </tr>
        {{/rollouts}}
        </tbody></table></div>
        {{/body}}{{/layout}}
        """

    static let rollout = """
        {{<layout}}{{$body}}
        {{#rollout}}
        <p><span class="status status-{{status}}" id="status">{{status}}</span> <code>{{flag}}</code>
        {{#planBlob}} · plan blob <code>{{planBlob}}</code>{{/planBlob}}</p>
        {{#description}}<p class="description" id="description">{{description}}</p>{{/description}}
        <p>phase <strong class="current-phase">{{currentPhase}}</strong>
        {{#nextPhase}} → next <strong class="next-phase">{{nextPhase}}</strong>{{/nextPhase}}</p>
        {{#hasBlockers}}<h2>Why it is not moving</h2><ul class="blockers">{{#blockers}}
        <li class="blocker blocker-{{kind}}"{{#role}} data-role="{{role}}"{{/role}}>{{label}}: {{detail}}</li>{{/blockers}}
        </ul>{{/hasBlockers}}
        {{#errors}}<p class="error">{{.}}</p>{{/errors}}
        {{#hasCoverage}}<h2>Coverage</h2><table class="coverage"><tr><th>environment</th><th>desired</th><th>actual</th>
        </tr>
        {{#coverage}}<tr><td>{{environment}}</td><td class="desired">{{desired}}</td><td class="actual">{{actual}}</td></tr>
        {{/coverage}}
        </table>{{/hasCoverage}}
        <h2>Phases</h2><div class="scroll"><table class="phases"><tr><th>phase</th><th>environment</th><th>coverage</th>
        <th>bake</th><th>entered</th><th>baked</th><th>projected start</th></tr>
        {{#phases}}<tr data-phase="{{name}}"><td>{{name}}</td><td>{{environment}}</td><td>{{coverage}}</td><td>{{bake}}</td>
        <td>{{entered}}</td><td class="baked">{{baked}}</td><td class="projected">{{projected}}</td></tr>{{/phases}}
        </table></div>
        {{#hasApproveCommands}}<h2>Approve the next phase</h2>
        <p class="muted">Each missing approver runs, in a clone with a work tree, then commits the file it writes
        as the policy requires and merges it:</p>
        <pre class="approve-commands">{{#approveCommands}}{{.}}
        {{/approveCommands}}</pre>{{/hasApproveCommands}}
        <h2>Approvals</h2>{{^hasApprovals}}<p class="muted">No approval files.</p>{{/hasApprovals}}
        {{#hasApprovals}}<div class="scroll"><table class="approvals"><tr><th>phase</th><th>role</th><th>approver</th>
        <th>commit</th><th>counted</th></tr>
        {{#approvals}}<tr><td>{{phase}}</td><td>{{role}}</td><td>{{approver}}</td><td><code>{{commit}}</code></td><td>
        {{#counted}}<span class="verdict-pass">counted</span>{{/counted}}{{^counted}}
        <span class="verdict-breach">not counted</span>: {{reason}}{{/counted}}</td></tr>{{/approvals}}
        </table></div>{{/hasApprovals}}
        <h2>Health</h2>{{^hasHealth}}<p class="muted">No checks evaluated in this phase.</p>{{/hasHealth}}
        {{#hasHealth}}<div class="scroll"><table class="health"><tr><th>check</th><th>value</th><th>threshold</th>
        <th>verdict</th><th>on breach</th></tr>
        {{#health}}<tr data-check="{{name}}"><td>{{name}}</td><td class="value">{{value}}</td><td>{{threshold}}</td>
        <td class="verdict-{{verdict}}">{{verdict}}{{#reason}}: {{reason}}{{/reason}}</td><td>{{onBreach}}</td></tr>
        {{/health}}
        </table></div>{{/hasHealth}}
        {{#hasBacktests}}<h2>Backtest: the last {{backtestSince}}</h2><p class="muted backtest-summary">{{backtestSummary}}</p>
        <div class="panels">{{#backtests}}<figure class="backtest" data-check="{{check}}" data-phases="{{phases}}"
          data-episodes="{{episodeCount}}" data-rollbacks="{{rollbacks}}"><figcaption><strong>{{check}}</strong>
        <span class="muted">{{phases}} ({{environment}}) · {{threshold}}, {{onBreach}}</span><br>{{verdict}}</figcaption>
        <svg class="chart backtest-chart" viewBox="0 0 {{width}} {{height}}" role="img" aria-label="backtest of {{check}}"
          data-plotted="{{pointCount}}" xmlns="http://www.w3.org/2000/svg">
        {{#episodes}}<rect class="episode" x="{{x}}" y="{{y}}" width="{{width}}" height="{{height}}"/>{{/episodes}}
        <line class="axis" x1="{{left}}" y1="{{top}}" x2="{{left}}" y2="{{bottomY}}"/>
        <line class="axis" x1="{{left}}" y1="{{bottomY}}" x2="{{rightX}}" y2="{{bottomY}}"/>
        <text x="4" y="{{topLabelY}}">{{yMax}}</text><text x="4" y="{{bottomY}}">{{yMin}}</text>
        <text x="{{left}}" y="{{timeY}}">{{start}}</text><text x="{{rightX}}" y="{{timeY}}" text-anchor="end">{{end}}</text>
        {{#lines}}<polyline class="s0" points="{{points}}"/>{{/lines}}
        {{#thresholds}}<line class="threshold" x1="{{left}}" y1="{{y}}" x2="{{rightX}}" y2="{{y}}"/>
        <text class="threshold-label" x="{{rightX}}" y="{{labelY}}" text-anchor="end">{{label}}</text>{{/thresholds}}
        </svg>{{#failures}}<p class="blocker">unread: {{.}}</p>{{/failures}}</figure>{{/backtests}}</div>{{/hasBacktests}}
        {{#backtestFailure}}<h2>Backtest</h2><p class="blocker backtest-failure">no backtest: {{backtestFailure}}</p>
        {{/backtestFailure}}
        {{#hasPanels}}<h2>Dashboard</h2><div class="panels">
        {{#panels}}<figure class="panel" data-title="{{title}}"><figcaption><strong>{{title}}</strong>
        {{#unit}} <span class="muted">({{unit}})</span>{{/unit}}</figcaption>
        {{#chart}}
        <svg class="chart" viewBox="0 0 {{width}} {{height}}" role="img" aria-label="{{title}}" data-points="{{pointCount}}"
          xmlns="http://www.w3.org/2000/svg">
        <line class="axis" x1="{{left}}" y1="{{top}}" x2="{{left}}" y2="{{bottomY}}"/>
        <line class="axis" x1="{{left}}" y1="{{bottomY}}" x2="{{rightX}}" y2="{{bottomY}}"/>
        <text x="4" y="{{topLabelY}}">{{yMax}}</text><text x="4" y="{{bottomY}}">{{yMin}}</text>
        <text x="{{left}}" y="{{timeY}}">{{start}}</text><text x="{{rightX}}" y="{{timeY}}" text-anchor="end">{{end}}</text>
        {{#lines}}<polyline class="s{{colorIndex}}" points="{{points}}" data-count="{{count}}"><title>{{label}}</title>
        </polyline>{{/lines}}
        </svg>
        <ul class="legend">{{#lines}}<li class="s{{colorIndex}}">{{label}}</li>{{/lines}}</ul>{{/chart}}
        {{#failure}}<p class="blocker">no chart: {{failure}}</p>{{/failure}}
        </figure>{{/panels}}
        </div>{{/hasPanels}}
        <h2>History</h2>{{^hasHistory}}<p class="muted">The audit log has nothing for this rollout.</p>{{/hasHistory}}
        {{#hasHistory}}<div class="scroll"><table class="history"><tr><th>time</th><th>kind</th><th>phase</th>
        <th>environment</th><th>change</th><th>reason</th><th>result</th><th>detail</th></tr>
        {{#history}}<tr><td>{{time}}</td><td>{{kind}}</td><td>{{phase}}</td><td>{{environment}}</td><td>{{change}}</td>
        <td>{{reason}}</td><td>{{result}}</td><td>{{detail}}</td></tr>{{/history}}
        </table></div>{{/hasHistory}}
        {{/rollout}}
        {{/body}}{{/layout}}
        """

    static let notFound = """
        {{<layout}}{{$body}}<p>{{message}}</p><p><a href="/">All rollouts</a></p>{{/body}}{{/layout}}
        """

    static let unavailable = """
        {{<layout}}{{$body}}<p class="error">{{message}}</p>{{/body}}{{/layout}}
        """
}
