"""Words on the teaching page: panel captions, scenario explanations, control hints (plain language, for students).

Numbers that a preset fixes (shock sizes, run length) are not repeated here: the page shows them from the preset
itself, so the words stay true when a preset is recalibrated.
"""

from __future__ import annotations

TITLE = "Reflexivity lab: leverage, liquidations and crashes"

INTRO = (
    "A lending pool lends stablecoins to traders against their crypto. When prices fall, the pool sells the "
    "collateral of traders who no longer have enough of it (a liquidation). Those sales push prices down further: "
    "the crash can feed on itself. Pick a scenario, press ▶, and watch."
)

PANELS: dict[str, tuple[str, str]] = {
    "price": (
        "Prices: market, fundamental, oracle",
        "The dashed line is what the coin is 'really' worth: it moves with news, including the scripted shock "
        "(grey band). The solid line is the market price, where trades happen: forced sales push it below the "
        "fundamental. The orange steps are the oracle, the price the lending pool believes; it updates only after "
        "a delay or a large enough move, and it decides who gets liquidated. The gap between market and "
        "fundamental is the part of the crash the traders did to themselves.",
    ),
    "liquidations": (
        "Liquidations and bad debt",
        "Bars: how many accounts were liquidated in each 10-minute stretch (longer runs: see the axis). Line: bad "
        "debt so far, the debt nobody "
        "will repay because an account's collateral was worth less than its debt by the time it was sold. Bad debt "
        "is paid first from the pool's reserves, then by the lenders.",
    ),
    "pool": (
        "Lending pool: utilisation and borrow rate",
        "Utilisation is the share of the pool's stablecoins that is lent out. The interest rate follows a kinked "
        "curve: cheap below the kink (dotted line), steep above it. When lenders withdraw or traders borrow more, "
        "utilisation rises and borrowing becomes expensive; at 100% lenders cannot get their money out.",
    ),
    "hf": (
        "Health factors of all borrowers",
        "Each account's health factor is its collateral value times the liquidation threshold, divided by its debt. "
        "Above 1 the account is safe; below 1 (the red line) anyone may liquidate it. Watch the whole crowd slide "
        "left as prices fall, and pile up below the line when liquidators cannot keep up.",
    ),
    "cascade": (
        "Cascade graph: who pushed whom under",
        "Each dot is one liquidation, placed at the time it happened. Its colour is the share of the account's "
        "damage (how far its health factor fell from where its owner last set it) that the price impact of earlier "
        "liquidations' sales did: grey for none (the news and other traders' selling did it all), orange for a "
        "fifth, red for half or more. A dot whose share reaches half is joined by a line to the liquidation that "
        "pushed hardest; the height is the generation: how many such links lead back to a liquidation with an "
        "outside cause. Orange dots are accounts the news and other selling took most of the way and earlier "
        "liquidations finished; tall red trees are cascades: the crash feeding on itself.",
    ),
    "funding": (
        "Perpetual futures: premium and funding",
        "A perpetual future is a bet on a coin's price, traded in its own market at its own price. Top: the "
        "mark price (solid), the perp price that decides perp liquidations, and the index (dashed), the spot "
        "price the oracle reports. Bottom: the premium, how far the perp trades above (+) or below (−) spot, and "
        "the funding rate (steps), paid at the end of each funding period to pull the two together: when perps "
        "trade below spot, shorts pay longs. Basis traders hold coins and the same amount short in perps; when "
        "funding turns against them they unwind, selling coins on the spot market.",
    ),
    "backstop": (
        "Who pays for perp losses: vault, insurance fund, ADL",
        "A liquidated perp trader whose loss outruns the margin leaves a hole. The venue fills it in order: the "
        "backstop vault takes the position over while it can afford to, then the insurance fund pays the loss "
        "(lines, left axis). When both are spent, auto-deleveraging (ADL) closes the positions of profitable "
        "traders on the other side at the bankrupt trader's price, most profitable and most leveraged first: the "
        "winners pay. Right axis: the ADL volume so far, each step with ADL fills marked ×.",
    ),
}

SCENARIOS: dict[str, str] = {
    "liquidation_hunt": (
        "A calm day, but one trader with $300M reads every account's liquidation price, as anyone can on a public "
        "lending pool. It sells ETH or BTC down to the price where the most forced selling is waiting, the oracle "
        "passes that price on, the accounts there are liquidated and liquidators sell the seized coins: the hunter "
        "buys its coins back from them, cheaper. Switch 'Positions visible' off (or compare with positions hidden) "
        "to see what a pool that proves solvency without showing positions takes away from it."
    ),
    "oracle_attack": (
        "A calm day until, an hour in, an attacker sells ETH hard into a thin venue one oracle updater reads (the "
        "deep market the traders use does not move) and, through one corrupted updater, posts a false price, until "
        "the pool believes ETH is 10% cheaper than it is. Accounts "
        "near the line are liquidated at the false price, and the attacker is the one who liquidates them, taking "
        "their collateral at a discount. The defences are an average over time (TWAP) and several updaters whose "
        "median counts; raise them and see what the attack must pay."
    ),
    "baseline": (
        "A calm day: prices wander with ordinary volatility and nothing is scripted. This is the control group. "
        "Health factors barely move, liquidations are rare, and the few that happen have an outside cause (grey "
        "dots, no links). Every other scenario changes one thing from here, so keep this picture in mind."
    ),
    "crash": (
        "A sharp drop in the fundamental value of ETH and BTC over half an hour, the kind of move crypto sees a few "
        "times a year. Health factors slide towards 1; cautious traders sell coins to pay down their debt, then the "
        "first accounts are liquidated and liquidators sell the seized coins, all into a market of limited depth; "
        "the market price falls below the fundamental; the oracle passes the lower price on to the pool; more "
        "accounts cross the line. In the cascade graph, the redder a dot, the more of that account's damage earlier "
        "liquidations' sales did. Turn on the comparison to run the same shock with twice the leverage."
    ),
    "black_thursday": (
        "Modelled on 12 March 2020: a fall of nearly half in a few hours, and at the worst moment the machinery "
        "fails. Gas costs spike so liquidators stop, and the oracle runs stale. Unhealthy accounts pile up under the "
        "liquidation line without being liquidated; by the time they are, their collateral is worth less than "
        "their debt, and the difference becomes bad debt for the lenders. Liquidation is only a safety net if "
        "someone can pull it in time."
    ),
    "black_thursday_auction": (
        "Black Thursday as Maker lived it: the same fall and the same congestion, but unhealthy accounts go to "
        "English auctions of at most 50 ETH each, where a bid wins if nobody beats it within 10 minutes. Most "
        "keepers run software whose transactions stop landing when gas spikes; a few pay any gas, kick the vaults "
        "themselves and bid zero, which needs no money. With nobody to outbid them, lots worth millions go for "
        "nothing and the debt they leave is bad debt. Switch the liquidation picker to dutch to see the auctions "
        "Maker adopted afterwards."
    ),
    "contagion": (
        "Eight correlated coins; each trader holds three of them in one cross-margined account. Only one coin is "
        "shocked, but a trader whose position in it collapses is liquidated on all the collateral in the account, "
        "so liquidators sell the other coins too, hurting traders who never held the shocked one. Use 'Asset "
        "shown' to follow the damage to other coins, and try isolated margin to see the firewall it builds."
    ),
    "margin_mix": (
        "The contagion market again, but traders choose how their accounts are margined: some cross (all "
        "positions back each other), some isolated (each position stands alone), some portfolio (margin set by "
        "stress-testing the whole account). Most only hold coins, a few are short, and nobody trades on momentum, so "
        "only the shock and the liquidations move prices. Compare how far the damage spreads with 'Margin mode' "
        "set to cross, then to isolated."
    ),
    "leverage_cycle": (
        "No scripted shock at all. Most traders target a level of volatility: when markets are calm they borrow "
        "more, when volatility rises they must sell. Their selling raises volatility, which forces more selling: "
        "leverage is pro-cyclical, and a crash can grow out of nothing. Use a large 'steps per click' and play."
    ),
    "perp_crash": (
        "The crash again, but now nearly a third of the traders bet with perpetual futures instead of borrowing from the "
        "pool, and basis traders hold coins against a short perp to earn funding, linking the two markets. When "
        "the drop comes, perp liquidations sell into the thinner perp market and push the perp price far below "
        "spot: the premium plunges and funding turns sharply negative. The basis traders unwind by selling their "
        "coins on the spot market. Watch the premium, and how much of the forced spot selling was theirs (the "
        "funding panel's note)."
    ),
    "dynamic_margin": (
        "The crash again, with a risk manager: a rule that lowers how much may be borrowed against ETH and BTC (LTV) "
        "and the threshold at which positions are liquidated, as the market's volatility rises (it reads the "
        "market price every minute, as risk oracles do), by at most half a point a minute, as on-chain risk "
        "stewards are bounded. A lower threshold liquidates earlier, with more "
        "collateral left to cover the debt, but it also liquidates more positions while prices are still falling. "
        "Watch the health factors drop when the thresholds are cut."
    ),
    "lst_depeg": (
        "Staking collateral. Some traders loop stETH, a staked-ETH token that earns about 4% a year: they deposit "
        "it, borrow ETH against it at Aave's high E-mode limits, buy more stETH and deposit it again. ETH's price "
        "does not matter to them, only stETH's price in ETH. Then stETH slides 6% below ETH over six hours, as "
        "it did in June 2022, while ETH itself does not fall. Looped accounts are liquidated, liquidators sell "
        "their stETH, and the discount deepens far beyond 6%. Watch the stETH price against ETH's."
    ),
    "oct_10_2025": (
        "Modelled on 10 October 2025: a fast, broad drop with much of the leverage in perpetual futures and thin "
        "perp markets. Perp liquidations overwhelm the venue's safety net: within minutes the backstop vault and "
        "the small insurance fund are spent. Then the venue auto-deleverages: it closes the positions of "
        "profitable short traders at the bankrupt traders' prices, most profitable and most leveraged first. "
        "Winners pay for losers, whether they wanted to stop or not."
    ),
}

SCENARIO_FALLBACK = "A scenario shipped with the model; its one-line description is shown above."

# One sentence per control, keyed by its `Controls` field: a section's hint line is its controls' sentences in order.
HINTS: dict[str, str] = {
    "max_leverage": "Max leverage: the most a trader may hold per dollar of its own money (each draws a target "
    "between 1.2× and this).",
    "n_traders": "Traders: how many agents share the same total money (fewer run faster).",
    "ltv": "LTV: the most that may be borrowed per dollar of ETH collateral.",
    "liquidation_threshold": "Liq. threshold: the share of the collateral that counts in the health factor (never "
    "below the LTV).",
    "liquidation_bonus": "Liq. bonus: the discount a liquidator gets on the collateral it buys.",
    "close_factor": "Close factor: the share of the debt one liquidation may repay.",
    "oracle_latency": "Oracle delay: how old the price is that the pool's oracle reads.",
    "oracle_deviation": "Oracle deviation: the move that makes it post a new price.",
    "depth_scale": "Market depth: how much money it takes to move the price (×1 is the scenario's).",
    "shock_scale": "Crash size: the scenario's scripted shock, scaled (0 = no shock).",
    "funding_cap": "Funding cap: the most funding a position can pay per funding period (right end: no cap).",
    "loop_leverage": "Loop leverage: the loopers' stETH per dollar of their own money (their average; each "
    "levers between 0.75 and 1.25 times it).",
    "insurance_fund_usd": "Ins. fund: the venue's insurance fund, its reserve for losses beyond a liquidated "
    "trader's margin.",
    "seed": "Seed: the random draws; the same seed gives the same run.",
    "risk_manager": "Risk manager: when volatility jumps (its own 5-minute read of the market price), it cuts the "
    "ETH and BTC LTV and liq. threshold by up to 0.5 points a minute (at most 10 points in all).",
    "n_hunters": "Hunters: traders with $300M each who sell the price down to where many accounts are liquidated, "
    "then buy back cheaper after the forced sales.",
    "positions_visible": "Positions visible: whether hunters can read every account's liquidation price (off: the "
    "pool proves solvency without showing positions, and hunters guess from its totals).",
    "attacker": "Oracle attacker: drives the ETH oracle 10% down by selling into the market it reads (in the "
    "oracle_attack preset a thin venue one updater reads), then liquidates first at the false price.",
}

# What comparison mode holds fixed: the seed, hence the news (the model draws the fundamental path from its own
# random stream), and every setting but one. Nothing more is promised: the change can alter what the agents do
# and so the rest of the run.
COMPARE = (
    "Run B uses the same seed and gets the same news (an identical fundamental path) as run A, with one parameter "
    "changed."
)
COMPARE_TITLE = "Comparison: same seed, same news, one parameter changed"

LIQUIDATION_MECHANISMS: dict[str, str] = {
    "keeper": "keeper: liquidators repay the debt and take the collateral at the bonus's discount",
    "english": "english: Maker's 2020 auctions: keepers bid up a price, a lone bidder can win for ~0",
    "dutch": "dutch: Maker's auctions since 2021: the price falls until a keeper takes the collateral",
}

MARGIN_MODES: dict[str, str] = {
    "cross": "cross: one account per trader, all positions back each other",
    "isolated": "isolated: every position has its own collateral",
    "portfolio": "portfolio: margin set by stress-testing the whole account",
    "mixed": "mixed: the scenario's own mix of cross, isolated and portfolio accounts",
}

TRY: dict[str, list[str]] = {
    "baseline": [
        "Press ▶ and watch the health-factor histogram: it barely moves.",
        "Raise max leverage to 8× and the ETH LTV to 90%, press Reset, and play again: is it still calm?",
        "Halve the market depth: do the traders' own trades now move the price?",
    ],
    "crash": [
        "Press ▶ and stop just after the shock: where is the market price compared with the fundamental?",
        "Switch on the comparison (max leverage ×2), press Reset and play: same shock, twice the leverage.",
        "Set the oracle delay to 20 min: do liquidations start later, and does the bad debt grow?",
        "Halve the crash size: is the damage halved too?",
    ],
    "black_thursday": [
        "Watch the health-factor histogram after the shock: accounts wait below the line.",
        "Compare with a slower oracle, or raise the liquidation bonus: who gets paid, who loses?",
        "Try isolated margin: does it contain the bad debt?",
    ],
    "black_thursday_auction": [
        "Play to step 300, into the congestion: watch the bad debt climb as lots go for nothing, 10 minutes apiece.",
        "Set Liquidation to dutch, press Reset and play: the same crisis with a falling-price auction.",
        "Set Liquidation to keeper: fixed-bonus liquidators under the same congestion. Which loses least?",
    ],
    "contagion": [
        "Change 'Asset shown' to ETH or BTC: they fall although only one coin was shocked.",
        "Compare with isolated margin: does the contagion stop at the shocked coin?",
    ],
    "margin_mix": [
        "Play to the end of the shock and note the liquidations and bad debt.",
        "Set 'Margin mode' to cross, press Reset and play again; then isolated. Which contains the damage?",
    ],
    "leverage_cycle": [
        "Set steps per click to 60 and play: watch leverage build up in the calm, then unwind.",
        "Compare with max leverage ÷2: does the cycle disappear?",
    ],
    "perp_crash": [
        "Play past the shock: how far below the index does the mark fall, and for how long?",
        "Keep playing to the first funding payment: who pays whom, and how much per period?",
        "Set a funding cap of 1%, press Reset and play to the end: does the cap change the crash, or only who "
        "pays whom afterwards?",
    ],
    "dynamic_margin": [
        "Play through the crash: when does the risk manager start cutting, and is the crash over by then?",
        "Switch the risk manager off, press Reset and play again: is the bad debt smaller or larger without it?",
    ],
    "lst_depeg": [
        "Play through the depeg: at what discount does the first looped account go, and how deep does it end?",
        "Set the loop leverage to 5×, press Reset and play again: do the loopers survive the same 6%?",
    ],
    "oct_10_2025": [
        "Play through the drop with steps per click 1 or 5: when does the insurance fund hit zero, and when does "
        "the first ADL fill come?",
        "Raise the insurance fund to $20M, press Reset and play: does ADL still happen?",
        "Compare with market depth ÷2: do thinner markets make the backstops run out sooner?",
    ],
}

PENDING = "Settings changed: press Reset to start a new run with them."
DONE = "The run is over. Press Reset to start again."


def try_this(name: str) -> list[str]:
    """Suggestions for a scenario (general ones for presets added later)."""
    return TRY.get(name, ["Press ▶ and watch the health factors as prices move.", "Turn on the comparison."])


def scenario_text(name: str) -> str:
    """The explanation paragraph of a scenario (a generic line for presets added later)."""
    return SCENARIOS.get(name, SCENARIO_FALLBACK)
