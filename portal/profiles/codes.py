"""Code lists for enrollment profile fields: Setup Assistant skip keys, languages and regions.

Embedded (from Debian's iso-codes 3166-1 and 639-2 tables) rather than a dependency such as
pycountry: a few kilobytes of codes that change once in years. 639-2 local-use codes (qaa–qtz)
are left out: Apple cannot know them.
"""
from __future__ import annotations

# Apple's skip_setup_items keys (reference §3.6) with the names Setup Assistant shows.
SKIP_SETUP_ITEMS: tuple[tuple[str, str], ...] = (
    ("Accessibility", "Accessibility"),
    ("AccessibilityAppearance", "Accessibility appearance"),
    ("ActionButton", "Action button"),
    ("AdditionalPrivacySettings", "Additional privacy settings"),
    ("Android", "Move from Android"),
    ("Appearance", "Appearance (light/dark mode)"),
    ("AppleID", "Apple Account (Apple ID)"),
    ("AppStore", "App Store"),
    ("Biometric", "Touch ID / Face ID"),
    ("CameraButton", "Camera button"),
    ("DeviceToDeviceMigration", "Device to device migration"),
    ("Diagnostics", "Diagnostics (App Analytics)"),
    ("DisplayTone", "True Tone display"),
    ("EnableLockdownMode", "Lockdown Mode"),
    ("FileVault", "FileVault"),
    ("HomeButtonSensitivity", "Home button sensitivity"),
    ("iCloudDiagnostics", "iCloud Analytics"),
    ("iCloudStorage", "iCloud storage"),
    ("iMessageAndFaceTime", "iMessage and FaceTime"),
    ("Intelligence", "Apple Intelligence"),
    ("Keyboard", "Keyboard"),
    ("LiquidGlass", "Liquid Glass"),
    ("Location", "Location Services"),
    ("MessagingActivationUsingPhoneNumber", "iMessage activation with phone number"),
    ("Multitasking", "Multitasking"),
    ("OnBoarding", "On-boarding tips"),
    ("OSShowcase", "OS showcase"),
    ("Passcode", "Passcode"),
    ("Payment", "Apple Pay"),
    ("Privacy", "Data & Privacy"),
    ("Registration", "Registration"),
    ("Restore", "Apps & Data (restore)"),
    ("RestoreCompleted", "Restore completed"),
    ("Safety", "Emergency SOS / safety"),
    ("SafetyAndHandling", "Safety and handling"),
    ("ScreenSaver", "Screen saver"),
    ("ScreenTime", "Screen Time"),
    ("SIMSetup", "Cellular (SIM) setup"),
    ("Siri", "Siri"),
    ("SoftwareUpdate", "Software update"),
    ("SpokenLanguage", "Spoken language"),
    ("TapToSetup", "Tap to set up"),
    ("TermsOfAddress", "Terms of address"),
    ("Tips", "Tips"),
    ("TOS", "Terms and conditions"),
    ("TVHomeScreenSync", "Apple TV home screen sync"),
    ("TVProviderSignIn", "TV provider sign-in"),
    ("TVRoom", "Apple TV room"),
    ("UnlockWithWatch", "Unlock with Apple Watch"),
    ("UpdateCompleted", "Update completed"),
    ("WatchMigration", "Apple Watch migration"),
    ("WebContentFiltering", "Web content filtering"),
    ("Welcome", "Welcome (Get Started)"),
    ("Zoom", "Display zoom"),
)
SKIP_KEYS = frozenset(key for key, _ in SKIP_SETUP_ITEMS)

# ISO 639-1 (two letters) and ISO 639-2 (three letters, terminology and bibliographic forms).
LANGUAGES = frozenset("""
    aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de
    dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id
    ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu
    lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu
    rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr
    ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu
    aar abk ace ach ada ady afa afh afr ain aka akk alb ale alg alt amh ang anp apa ara arc arg arm arn
    arp art arw asm ast ath aus ava ave awa aym aze bad bai bak bal bam ban baq bas bat bej bel bem ben
    ber bho bih bik bin bis bla bnt bod bos bra bre btk bua bug bul bur byn cad cai car cat cau ceb cel
    ces cha chb che chg chi chk chm chn cho chp chr chu chv chy cmc cnr cop cor cos cpe cpf cpp cre crh
    crp csb cus cym cze dak dan dar day del den deu dgr din div doi dra dsb dua dum dut dyu dzo efi egy
    eka ell elx eng enm epo est eus ewe ewo fan fao fas fat fij fil fin fiu fon fra fre frm fro frr frs
    fry ful fur gaa gay gba gem geo ger gez gil gla gle glg glv gmh goh gon gor got grb grc gre grn gsw
    guj gwi hai hat hau haw heb her hil him hin hit hmn hmo hrv hsb hun hup hye iba ibo ice ido iii ijo
    iku ile ilo ina inc ind ine inh ipk ira iro isl ita jav jbo jpn jpr jrb kaa kab kac kal kam kan kar
    kas kat kau kaw kaz kbd kha khi khm kho kik kin kir kmb kok kom kon kor kos kpe krc krl kro kru kua
    kum kur kut lad lah lam lao lat lav lez lim lin lit lol loz ltz lua lub lug lui lun luo lus mac mad
    mag mah mai mak mal man mao map mar mas may mdf mdr men mga mic min mis mkd mkh mlg mlt mnc mni mno
    moh mon mos mri msa mul mun mus mwl mwr mya myn myv nah nai nap nau nav nbl nde ndo nds nep new nia
    nic niu nld nno nob nog non nor nqo nso nub nwc nya nym nyn nyo nzi oci oji ori orm osa oss ota oto
    paa pag pal pam pan pap pau peo per phi phn pli pol pon por pra pro pus que raj rap rar roa roh rom
    ron rum run rup rus sad sag sah sai sal sam san sas sat scn sco sel sem sga sgn shn sid sin sio sit
    sla slk slo slv sma sme smi smj smn smo sms sna snd snk sog som son sot spa sqi srd srn srp srr ssa
    ssw suk sun sus sux swa swe syc syr tah tai tam tat tel tem ter tet tgk tgl tha tib tig tir tiv tkl
    tlh tli tmh tog ton tpi tsi tsn tso tuk tum tup tur tut tvl twi tyv udm uga uig ukr umb und urd uzb
    vai ven vie vol vot wak wal war was wel wen wln wol xal xho yao yap yid yor ypk zap zbl zen zgh zha
    zho znd zul zun zxx zza
""".split())

# ISO 3166-1 alpha-2.
REGIONS = frozenset("""
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT
    BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH
    ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT
    HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS
    LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI
    NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG
    SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG
    UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
""".split())
