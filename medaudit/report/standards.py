"""Annex A, the standards map (shared/REGULATORY.md): each framework, what it asks a manufacturer to show, and where
this report answers it; and the references the report cites. Sources marked "per summaries" are secondary."""

from __future__ import annotations

STATE_OF_THE_ART = "the attacks that ran, per tier (section 4): {attacks}"  # MDR-17.2's answer, filled per run
ATTACK_NAMES = {  # attack name -> (how the standards map names it, the reference key that cites it)
    "fgsm": ("FGSM", "Goodfellow 2015"),
    "pgd": ("PGD", "Madry 2018"),
    "mifgsm": ("MI-FGSM with input diversity", "Dong 2018"),
    "apgd": ("APGD from AutoAttack", "Croce & Hein 2020"),
    "square": ("Square from AutoAttack", "Andriushchenko 2020"),
}
STANDARDS = (  # (id, framework, what it asks, how this report answers)
    (
        "FDA-AI",
        "FDA draft guidance “AI-Enabled Device Software Functions” (Jan 2025), cybersecurity section (per summaries)",
        "AI-specific threats including model evasion; testing under real-world conditions; all known limitations; "
        "a model card",
        "scope: evasion only (section 1); target card (section 1); limitations (section 8)",
    ),
    (
        "FDA-CYBER",
        "FDA premarket cybersecurity guidance (2023, updated 2025)",
        "threat model, control and verification evidence, traceable",
        "stable threat, criterion and control ids (sections 3 and 7, Annex C); the report is the evidence",
    ),
    (
        "EU-AIA-15",
        "EU AI Act (Reg. 2024/1689) Art. 15",
        "15(3) accuracy levels and metrics declared; 15(5) resilience to adversarial examples or model evasion",
        "declared metrics with intervals (section 2, Annex D); scope names Art. 15(5) (section 1)",
    ),
    (
        "prEN-18282",
        "prEN 18282 (AI cybersecurity, draft)",
        "objective criteria to decide whether a vulnerability goal is met",
        "thresholds stated before the results (section 2), then the verdict (page 1)",
    ),
    (
        "ISO-24029",
        "ISO/IEC TR 24029-1:2021; ISO/IEC DIS 24029-3 (statistical methods, draft)",
        "robustness goals, test plan, metrics and test data, protocol; performance drops",
        "section 2 (goals), section 4 (protocol), section 5 (drops with intervals)",
    ),
    (
        "NIST-100-2",
        "NIST AI 100-2 E2025 adversarial ML taxonomy",
        "attacker goal, knowledge (white, gray, black box), capabilities (query access, perturbation budget); "
        "§2.2.3 transferability",
        "threat model per tier and row in these three fields (section 3)",
    ),
    (
        "ATLAS",
        "MITRE ATLAS",
        "technique ids for the attack path",
        "ids per tier and row (section 3), also in results.json",
    ),
    ("OWASP-ML01", "OWASP ML Top 10 (2023)", "ML01 Input Manipulation Attack", "scope (section 1)"),
    (
        "GMLP",
        "GMLP principles (FDA, Health Canada, MHRA 2021; IMDRF N88 2025)",
        "P4 test data independent of training; P8 statistically sound test plans; P9 known limitations",
        "split rule and how intervals were resampled (section 4); intervals (section 5); limitations (section 8)",
    ),
    (
        "TIR34971",
        "AAMI TIR34971 (ISO 14971 for machine learning)",
        "hazards, hazardous situations, harms",
        "each criterion's hazardous situation and harm (section 7)",
    ),
    (
        "MDR-17.2",
        "EU MDR 2017/745 Annex I §17.2",
        "software developed to the state of the art, including information security",
        STATE_OF_THE_ART,
    ),
    (
        "MDR-17.4",
        "EU MDR 2017/745 Annex I §17.4",
        "minimum IT-security requirements, including protection against unauthorised access",
        "the query and white-box tiers show what score access and weight access give an attacker (sections 3 "
        "and 5); their next steps name the access to protect (page 1)",
    ),
    (
        "MDCG-2019-16",
        "MDCG 2019-16 (cybersecurity for medical devices)",
        "security risk management beside safety risk management; verification of security controls; residual "
        "risk and its acceptability",
        "residual risk per threat against the acceptability criteria, with the controls to verify (section 7)",
    ),
    (
        "IEC-81001-5-1",
        "IEC 81001-5-1:2021 §5.7 (security testing)",
        "security testing incl. vulnerability and penetration testing, with documented results",
        "the report as the test record: what was tried, with what budget, what was found (sections 4 and 5, "
        "Annexes C and D)",
    ),
    (
        "TIR57",
        "AAMI TIR57:2016/(R)2023",
        "threat, vulnerability, exploitability, impact",
        "threat rows with knowledge and access (exploitability, section 3) and the clinical effect at the threshold "
        "(impact, section 5)",
    ),
    (
        "ISO-14971",
        "ISO 14971:2019 §7–8",
        "risk control, verification of each control's effectiveness, overall residual risk against the "
        "manufacturer's acceptability criteria",
        "acceptability criteria quoted (section 2); residual risk per threat against them (section 7)",
    ),
)

REFERENCES = (
    (
        "Bortsova 2021",
        "Bortsova G. et al. Adversarial attack vulnerability of medical image analysis systems: "
        "unexplored factors. Medical Image Analysis 73, 2021.",
    ),
    (
        "Croce & Hein 2020",
        "Croce F., Hein M. Reliable evaluation of adversarial robustness with an ensemble of "
        "diverse parameter-free attacks (AutoAttack, APGD). ICML 2020.",
    ),
    (
        "Andriushchenko 2020",
        "Andriushchenko M. et al. Square Attack: a query-efficient black-box adversarial attack "
        "via random search. ECCV 2020.",
    ),
    ("Dong 2018", "Dong Y. et al. Boosting adversarial attacks with momentum (MI-FGSM). CVPR 2018."),
    ("Madry 2018", "Madry A. et al. Towards deep learning models resistant to adversarial attacks (PGD). ICLR 2018."),
    ("Goodfellow 2015", "Goodfellow I. et al. Explaining and harnessing adversarial examples (FGSM). ICLR 2015."),
    (
        "Croce 2021",
        "Croce F. et al. RobustBench: a standardized adversarial robustness benchmark. NeurIPS 2021 "
        "Datasets and Benchmarks.",
    ),
    (
        "NIST AI 100-2",
        "NIST AI 100-2 E2025. Adversarial Machine Learning: A Taxonomy and Terminology of Attacks and Mitigations.",
    ),
    ("MITRE ATLAS", "MITRE ATLAS, Adversarial Threat Landscape for AI Systems, atlas.mitre.org."),
    ("OWASP ML01", "OWASP Machine Learning Security Top 10 (2023): ML01 Input Manipulation Attack."),
    ("EU AI Act", "Regulation (EU) 2024/1689, Article 15: accuracy, robustness and cybersecurity."),
    ("EU MDR", "Regulation (EU) 2017/745, Annex I, general safety and performance requirements §17.2 and §17.4."),
    ("MDCG 2019-16", "MDCG 2019-16 rev. 1, Guidance on cybersecurity for medical devices."),
    (
        "IEC 81001-5-1",
        "IEC 81001-5-1:2021, Health software and health IT systems safety, effectiveness and "
        "security, Part 5-1: security activities in the product life cycle.",
    ),
    ("AAMI TIR57", "AAMI TIR57:2016/(R)2023, Principles for medical device security: risk management."),
    ("ISO 14971", "ISO 14971:2019, Medical devices: application of risk management to medical devices."),
    ("AAMI TIR34971", "AAMI TIR34971:2023, Application of ISO 14971 to machine learning in artificial intelligence."),
    (
        "ISO/IEC TR 24029-1",
        "ISO/IEC TR 24029-1:2021, Assessment of the robustness of neural networks, Part 1: overview.",
    ),
    ("prEN 18282", "prEN 18282 (draft), Cybersecurity specifications for AI systems."),
    (
        "FDA",
        "FDA, Cybersecurity in Medical Devices: Quality System Considerations and Content of Premarket "
        "Submissions (2023, updated 2025); draft guidance Artificial Intelligence-Enabled Device Software Functions "
        "(Jan 2025).",
    ),
    (
        "GMLP",
        "Good Machine Learning Practice for Medical Device Development: Guiding Principles (FDA, Health Canada, "
        "MHRA 2021); IMDRF N88 (2025).",
    ),
)


def standards_rows(attack_names: list[str]) -> list[tuple[str, str, str, str]]:
    """The standards map with its state-of-the-art line naming only the attacks that ran (`attack_names`)."""
    ran = ", ".join(ATTACK_NAMES[n][0] for n in dict.fromkeys(attack_names) if n in ATTACK_NAMES) or "none"
    return [(i, f, asks, answer.format(attacks=ran)) for i, f, asks, answer in STANDARDS]


def references(attack_names: list[str]) -> list[tuple[str, str]]:
    """The references, less the papers of attacks that did not run."""
    unused = {key for name, (_, key) in ATTACK_NAMES.items() if name not in attack_names}
    return [(key, text) for key, text in REFERENCES if key not in unused]
