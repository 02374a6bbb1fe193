"""The certificate checker: parse a target, guard and resolve it, probe it, then judge the evidence.

Network evidence first (targets, ssrf, probe), then a pure evaluation (trust, evaluate);
check ties the two together for many targets at once.
"""

import warnings

from cryptography.utils import CryptographyDeprecationWarning

# A served certificate's flaws (a negative serial, say) are judged and reported by the checker;
# the library's warnings about them would only reach a user's terminal as noise.
warnings.filterwarnings("ignore", category=CryptographyDeprecationWarning)
