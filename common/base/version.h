#ifndef AIM_VERSION_H
#define AIM_VERSION_H
#define AIM_VERSION "0.1.0"
#endif
